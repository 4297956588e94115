"""Settings for psmesh services and the local stack.

Everything comes from environment variables (prefix ``PSMESH_``) with defaults
that suit one developer machine; secrets never live in files. The topology
(``topology.yaml``) says *what* runs; these settings say *where*.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from psmesh.exceptions import SettingsError

#: Kafka 3.9.1: faust-streaming 0.15.3 needs aiokafka 0.12.0, which cannot talk
#: to Kafka 4.x (KIP-896 removed the protocol versions it sends). See README.
KAFKA_VERSION = "3.9.1"

#: librdkafka's security.protocol and sasl.mechanisms values; libpq's sslmode values.
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")
PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
ENV_PREFIX = "PSMESH_"

SOURCE_DATABASES = ("crm", "psa", "timeexp", "erp")
DATABASES = (*SOURCE_DATABASES, "reporting")


def _project_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


class Settings(BaseSettings):
    """Where the mesh's servers are, and where the local stack keeps its state."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    #: Runtime directory of the local stack: data, logs, pid files.
    home: Path = Field(default_factory=lambda: _project_root() / ".psmesh")
    #: Cache of downloaded Kafka jars, shared by every runtime directory.
    cache: Path = Field(default_factory=lambda: Path.home() / ".cache" / "psmesh")
    bind_host: str = "127.0.0.1"

    kafka_version: str = KAFKA_VERSION
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    #: How long the local broker lets an empty consumer group gather members before its first assignment. 0 lets a
    #: test's or the demo's group form at once; Kafka's own default, 3000, lets workers started together join in
    #: one assignment instead of each newcomer causing a rebalance (bench/processors.py --workers uses it).
    kafka_initial_rebalance_delay_ms: int = 0
    #: Set to use an existing cluster instead of the local broker.
    kafka_bootstrap: str | None = None
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None

    pg_port: int = 5433
    pg_user: str = "psmesh"
    pg_password: SecretStr | None = None
    #: Set to use an existing PostgreSQL server instead of the local cluster.
    pg_host: str | None = None
    pg_sslmode: str = "prefer"

    registry_port: int = 8081
    #: Set to use an existing Confluent-compatible registry.
    registry_url: str | None = None
    registry_topic: str = "_schemas"

    #: HTTP port of the processor worker (interactive queries under /views/, metrics at /metrics).
    processors_port: int = 6066
    #: The URL other processor workers reach this one's HTTP port at: a view query for a key another worker owns is
    #: forwarded to the owner's URL. Unset: http://127.0.0.1:<port>, which serves workers on one host only; set it
    #: per worker (http://worker-2.internal:6066) when they run on several.
    processors_url: str | None = None
    #: Interface the processor worker's HTTP port listens on: its views (the firm's figures, with no authentication)
    #: and /metrics. Unset: the loopback while the worker's URL is a loopback address (workers on one host), every
    #: interface when the URL names another host (workers on several hosts forward view queries to each other); see
    #: :func:`worker_bind`. PSMESH_METRICS_HOST does not apply to the worker.
    processors_host: str | None = None
    #: Interface the services serve /metrics on (all, so a Prometheus elsewhere can scrape them).
    metrics_host: str = "0.0.0.0"
    #: Prometheus ports of the sinks; unset, the sink's ``metrics_port`` in topology.yaml applies (psmesh/ports.py).
    erp_sink_metrics_port: int | None = None
    reporting_sink_metrics_port: int | None = None
    #: Prometheus ports of the captures: the n-th source of the topology (from 0) gets base + n.
    #: Unset, each source's ``metrics_port`` in topology.yaml applies.
    cdc_metrics_port_base: int | None = None
    #: HTTP port of the executive page (``psmesh page serve``).
    page_port: int = 8090

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.bind_host}:{self.kafka_port}"

    @property
    def schema_registry_url(self) -> str:
        return self.registry_url or f"http://{self.bind_host}:{self.registry_port}"

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka settings shared by every producer, consumer and admin client."""
        conf: dict[str, str] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_ca_location:
            conf["ssl.ca.location"] = self.kafka_ssl_ca_location
        return conf

    def pg_dsn(self, dbname: str) -> str:
        """A libpq connection string for one database (password from the environment only).

        Each value is quoted as libpq wants it (psycopg's ``make_conninfo``): a password with a space, a quote or
        a backslash in it, or a user name like ``x host=elsewhere``, stays one value."""
        params: dict[str, Any] = {"host": self.pg_host or self.bind_host, "port": self.pg_port, "dbname": dbname,
                                  "user": self.pg_user}
        if self.pg_password:
            params["password"] = self.pg_password.get_secret_value()
        sslmode = self.pg_sslmode_option()
        if sslmode:
            params["sslmode"] = sslmode
        return make_conninfo(**params)

    def pg_sslmode_option(self) -> str | None:
        """libpq's sslmode: PSMESH_PG_SSLMODE whenever it is set; an external server gets 'prefer' otherwise."""
        if self.pg_host or "pg_sslmode" in self.model_fields_set:
            return self.pg_sslmode
        return None


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as PSMESH_* environment variables, so a child process sees exactly these servers.

    Secrets travel only in the child's environment, never in a file or a log.
    """
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"PSMESH_{name.upper()}"] = str(value)
    return env


def load_settings(**overrides) -> Settings:
    """The settings from the environment; ``SettingsError`` names every variable that is wrong and why."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError([_describe(error) for error in exc.errors(include_url=False)]) from exc
    problems = unusable(settings)
    if problems:
        raise SettingsError(problems)
    return settings


#: The settings that are TCP ports; those that may be 0, for no metrics server.
PORT_FIELDS = ("kafka_port", "kafka_controller_port", "pg_port", "registry_port", "processors_port",
               "erp_sink_metrics_port", "reporting_sink_metrics_port", "cdc_metrics_port_base", "page_port")
OPTIONAL_PORT_FIELDS = frozenset({"erp_sink_metrics_port", "reporting_sink_metrics_port"})


def unusable(settings: Settings) -> list[str]:
    """The values the clients would refuse later (librdkafka, libpq, the registry client), named by variable.

    Checked when the settings are loaded, so a wrong value stops a command
    before it starts anything rather than as a client's traceback.
    """
    problems = []
    choices = (
        ("kafka_security_protocol", settings.kafka_security_protocol.upper(), SECURITY_PROTOCOLS),
        ("kafka_sasl_mechanism", settings.kafka_sasl_mechanism, SASL_MECHANISMS),
        ("pg_sslmode", settings.pg_sslmode, PG_SSLMODES),
    )
    for field, value, allowed in choices:
        if value is not None and value not in allowed:
            problems.append(f"{ENV_PREFIX}{field.upper()}: must be one of {', '.join(allowed)} "
                            f"(got {getattr(settings, field)!r})")
    ca = settings.kafka_ssl_ca_location
    if ca is not None and ca != "probe" and not Path(ca).exists():  # librdkafka's "probe": the system's paths
        problems.append(f"{ENV_PREFIX}KAFKA_SSL_CA_LOCATION: {ca} does not exist")
    for field in PORT_FIELDS:
        value = getattr(settings, field)
        least = 0 if field in OPTIONAL_PORT_FIELDS else 1
        if value is not None and not least <= value <= 65535:
            what = "0 (none) or a port, 1 to 65535" if least == 0 else "a port, 1 to 65535"
            problems.append(f"{ENV_PREFIX}{field.upper()}: must be {what} (got {value})")
    if settings.registry_url is not None:
        try:
            check_registry_url(settings.registry_url)
        except ValueError as exc:
            problems.append(f"{ENV_PREFIX}REGISTRY_URL: {exc}")
    if settings.processors_url is not None:
        try:
            check_worker_url(settings.processors_url)
        except ValueError as exc:
            problems.append(f"{ENV_PREFIX}PROCESSORS_URL: {exc}")
    return problems


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address, or None for a name: brackets and a trailing dot left out, an IPv4-mapped IPv6
    address read as its IPv4 one, and a short form such as ``127.1`` or ``0`` read as the C library reads it."""
    text = host.strip("[]").rstrip(".")
    try:
        found: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        try:
            found = ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """The addresses ``host`` stands for here: itself for an address, what the resolver gives for a name (None
    when it gives nothing)."""
    address = _address(host)
    if address is not None:
        return {address}
    try:
        found = socket.getaddrinfo(host.rstrip("."), None, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return {a for a in (_address(str(info[4][0]).split("%")[0]) for info in found) if a is not None} or None


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback: reachable from this host only."""
    if not host:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def _reaches(bind: str, url_host: str) -> bool:
    """Whether a server listening on ``bind`` can answer at ``url_host``. Refused only where that is certain: a
    loopback on one side and not on the other, two loopbacks with no address in common (only then is a name,
    ``localhost``, looked up), or every interface of the other IP family. Another host's address is taken as given
    (NAT or DNS may bring it here)."""
    bound = _address(bind)
    if bound is not None and bound.is_unspecified:  # every interface of one family; a name is not looked up
        target = _address(url_host)
        return target is None or target.version == bound.version
    if is_loopback(bind) != is_loopback(url_host):
        return False
    if is_loopback(bind):
        ours, targets = _addresses(bind), _addresses(url_host)
        return ours is None or targets is None or bool(ours & targets)
    return True


def worker_bind(host: str | None, url: str) -> str:
    """The interface a processor worker listens on, given ``host`` (``--host``, ``PSMESH_PROCESSORS_HOST``; None
    or empty when unset) and ``url``, the address other workers reach it at.

    Unset, the loopback for a loopback ``url`` (127.0.0.1, or ::1 for an IPv6 one): the views carry the firm's
    figures and no authentication, so a worker on one host serves them to that host only. For a ``url`` naming
    another host, every interface (0.0.0.0, or :: for an IPv6 address), since the other workers forward view
    queries there. A ``host`` at which the ``url`` certainly cannot reach the worker (:func:`_reaches`) is
    refused. The host is returned as a server can bind it (``[::1]`` as ``::1``, ``127.1`` as ``127.0.0.1``)."""
    url_host = urlsplit(url).hostname or ""
    ipv6 = isinstance(_address(url_host), ipaddress.IPv6Address)
    if not host:
        if is_loopback(url_host):
            return "::1" if ipv6 else "127.0.0.1"
        return "::" if ipv6 else "0.0.0.0"
    if not _reaches(host, url_host):
        raise ValueError(f"the worker would listen on {host}, where the other workers cannot reach its URL {url}: "
                         "listen on the address that URL names, or on every interface (0.0.0.0, or :: for IPv6)")
    address = _address(host)
    return str(address) if address is not None else host.strip("[]").rstrip(".")


def worker_url(url: str | None, port: int) -> str:
    """A processor worker's URL: ``url`` (``--url``, PSMESH_PROCESSORS_URL), else its loopback address, which
    serves workers on one host only."""
    return url or f"http://127.0.0.1:{port}"


def check_worker_url(url: str) -> str:
    """A processor worker's URL as Faust routes view queries to it: http(s)://host:port, nothing after."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        raise ValueError(f"must be http://host:port or https://host:port, the address other workers reach this "
                         f"one's --web-port at (got {url!r})")
    if parts.hostname in ("0.0.0.0", "::"):
        raise ValueError(f"{parts.hostname} is where a server listens, not an address another worker can reach "
                         f"(got {url!r})")
    return url.rstrip("/")


def check_dsn(dsn: str) -> str:
    """A libpq connection string psycopg parses; the message never shows it (it may hold a password)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        reason = str(exc).strip() if str(exc).startswith("invalid connection option") else "it does not parse"
        raise ValueError(f"not a libpq connection string: {reason} (the value is not shown: it may hold a "
                         "password)") from exc
    return dsn


def check_registry_url(url: str) -> str:
    """A registry URL the schema registry client accepts (it takes a comma-separated list)."""
    for part in url.split(","):
        if not part.strip().startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL (got {part.strip()!r})")
    return url


def _describe(error: dict[str, Any]) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    name = f"{ENV_PREFIX}{field.upper()}"
    kind = error["type"]
    if kind in ("int_parsing", "int_type", "int_from_float"):
        message = "must be an integer"
    elif kind in ("float_parsing", "float_type"):
        message = "must be a number"
    elif kind in ("bool_parsing", "bool_type"):
        message = "must be true or false"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    # a secret's value is never shown, even a wrong one; a validator's message may already show it
    if "(got " not in message and "password" not in field and "input" in error:
        message += f" (got {error['input']!r})"
    return f"{name}: {message}"
