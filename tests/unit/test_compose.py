"""docker-compose.yml runs the whole mesh with Prometheus and a provisioned Grafana (issue 7).

No Docker engine runs on the build machines, so these tests read the files
Docker would read - the compose file, prometheus.yml, Grafana's provisioning
and the dashboard JSON - and check them against each other and against the
code: the CLI commands the services run, the ports they serve /metrics on and
the metric names the code defines. A renamed metric, option or port breaks a
test here, not a dashboard panel at 3 a.m.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from functools import cache
from pathlib import Path, PurePosixPath

import click
import pytest
import yaml
from click.testing import CliRunner

from psmesh.cli import main

ROOT = Path(__file__).resolve().parents[2]
PSMESH_IMAGE = "psmesh:dev"
#: Where the code that defines metrics lives (the packages of pyproject.toml).
CODE_PACKAGES = ("psmesh", "streams", "processors", "sinks")
#: Options whose value is the port a psmesh service serves /metrics on.
PORT_OPTIONS = ("--metrics-port", "--web-port", "--port")
#: The dashboard's required areas (issue 7): the metrics each must chart.
REQUIRED_AREAS = {
    "capture lag": ("psmesh_cdc_replication_lag_bytes", "psmesh_cdc_replication_lag_seconds"),
    "throughput": ("psmesh_cdc_events_captured_total", "psmesh_cdc_events_produced_total",
                   "psmesh_processor_events_total", "psmesh_sink_rows_written_total"),
    "end-to-end latency": ("psmesh_e2e_latency_seconds_bucket",),
    "consumer lag": ("psmesh_processor_consumer_lag", "psmesh_sink_consumer_lag"),
    "dead letters": ("psmesh_sink_dead_letters_total", "psmesh_processor_dead_letters_total"),
}


# ---- the files --------------------------------------------------------------------------------------------------
@cache
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


@cache
def prometheus() -> dict:
    return yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())


@cache
def dashboard() -> dict:
    return json.loads((ROOT / "docker" / "grafana" / "dashboards" / "psmesh.json").read_text())


def psmesh_services() -> dict[str, dict]:
    """The long-running services of the psmesh image (the one-shot ``init`` is not scraped)."""
    return {name: svc for name, svc in services().items()
            if svc.get("image") == PSMESH_IMAGE and svc.get("restart") == "unless-stopped"}


def commands(service: dict) -> list[list[str]]:
    """The psmesh command lines a service runs: its command, or each part of ``sh -c "a && b"``."""
    argv = service["command"]
    if isinstance(argv, str):
        argv = shlex.split(argv)
    if argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"]):
        return [shlex.split(part) for part in argv[2].split("&&")]
    return [argv]


def option_value(argv: list[str], option: str) -> str | None:
    for i, token in enumerate(argv):
        if token == option and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(option + "="):
            return token.split("=", 1)[1]
    return None


def published(service: dict) -> list[str]:
    """The service's published ports as Docker reads them with no variable set: ``${VAR:-default}`` → default."""
    return [re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", entry) for entry in service.get("ports", [])]


def metrics_port(service: dict) -> int:
    (argv,) = commands(service)
    ports = {int(v) for v in (option_value(argv, o) for o in PORT_OPTIONS) if v is not None}
    assert len(ports) == 1, f"expected one port option among {PORT_OPTIONS} in {argv}"
    return ports.pop()


def scrape_targets() -> dict[str, list[str]]:
    """job name → its static targets."""
    jobs: dict[str, list[str]] = {}
    for job in prometheus()["scrape_configs"]:
        assert job["job_name"] not in jobs, f"job {job['job_name']} twice"
        jobs[job["job_name"]] = [t for sc in job.get("static_configs", []) for t in sc["targets"]]
    return jobs


def mounts(service: dict) -> dict[str, Path]:
    """Container path → the repository path mounted there (bind mounts only)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            found[target] = (ROOT / source).resolve()
    return found


def in_container(service: dict, container_path: str) -> Path | None:
    """The repository file a container path of ``service`` shows, through its bind mounts."""
    path = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    return None


# ---- the metrics the code defines ----------------------------------------------------------------------------------
METRIC_KINDS = ("Counter", "Gauge", "Histogram", "Summary")


@cache
def defined_metrics() -> dict[str, frozenset[str]]:
    """Every series name the code's prometheus_client metrics expose → its label names.

    Found by reading the packages' sources (``Counter("name", "help", ["label", ...])`` and the
    like), so a metric renamed in the code and not on the dashboard fails the dashboard test.
    """
    exposed: dict[str, frozenset[str]] = {}
    for package in CODE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                kind = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
                if kind not in METRIC_KINDS or not node.args:
                    continue
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    continue
                labels = _label_names(node)
                for series in _series(kind, first.value):
                    exposed[series] = labels
    return exposed


def _label_names(call: ast.Call) -> frozenset[str]:
    node = call.args[2] if len(call.args) > 2 else next((k.value for k in call.keywords if k.arg == "labelnames"), None)
    if isinstance(node, (ast.List, ast.Tuple)):
        return frozenset(e.value for e in node.elts if isinstance(e, ast.Constant))
    return frozenset()


def _series(kind: str, name: str) -> list[str]:
    """The names prometheus_client exposes for one metric (it appends ``_total`` to a counter's name)."""
    if kind == "Counter":
        base = name.removesuffix("_total")
        return [f"{base}_total", f"{base}_created"]
    if kind == "Gauge":
        return [name]
    if kind == "Histogram":
        return [f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"]
    return [name, f"{name}_sum", f"{name}_count", f"{name}_created"]


def test_the_metric_scan_finds_the_metrics_of_every_service():
    # Guards the scan itself: an empty or partial scan would make the dashboard test vacuous.
    found = defined_metrics()
    assert found["psmesh_cdc_replication_lag_bytes"] == {"source"}
    assert found["psmesh_cdc_events_captured_total"] == {"source", "table", "op"}
    assert found["psmesh_cdc_commit_to_ack_seconds_bucket"] == {"source"}
    assert found["psmesh_processor_event_seconds_bucket"] == {"stage"}
    assert found["psmesh_sink_consumer_lag"] == {"sink", "topic", "partition"}
    assert found["psmesh_registry_requests_total"] == {"route", "method", "status"}
    assert "psmesh_registry_schemas_registered" not in found  # a counter is exposed with _total


# ---- compose: the psmesh services ----------------------------------------------------------------------------------
def test_compose_runs_one_capture_per_topology_source_on_its_metrics_port():
    topology = yaml.safe_load((ROOT / "topology.yaml").read_text())
    captures = {}
    for name, svc in psmesh_services().items():
        (argv,) = commands(svc)
        if argv[:3] == ["psmesh", "cdc", "run"]:
            captures[argv[3]] = (name, metrics_port(svc))
    declared = {s["name"]: s.get("metrics_port") for s in topology["sources"]}
    assert set(captures) == set(declared)
    for source, (name, port) in captures.items():
        assert name == f"cdc-{source}"
        assert port == declared[source], f"{name} serves metrics on {port}, topology.yaml says {declared[source]}"


def test_state_outlives_the_containers_on_named_volumes():
    # Kafka's topics and the captures' slots in PostgreSQL must go together: re-creating a container loses neither.
    named = set(compose()["volumes"])

    def mounts(service: str) -> dict[str, str]:
        pairs = [m.split(":")[:2] for m in services()[service].get("volumes", [])]
        return {target: source for source, target in pairs if source in named}

    kafka = services()["kafka"]
    assert mounts("kafka").get(kafka["environment"]["KAFKA_LOG_DIRS"]) == "kafka-data"
    assert mounts("postgres").get("/var/lib/postgresql/data") == "pg-data"
    for name, svc in psmesh_services().items():
        (argv,) = commands(svc)
        if argv[:3] == ["psmesh", "cdc", "run"]:
            assert mounts(name).get("/app/.psmesh/cdc") == "psmesh-cdc", name
    assert mounts("processors").get("/app/.psmesh/processors") == "processors-data"
    # ready over TCP, not the init scripts' socket-only server
    assert "-h 127.0.0.1" in services()["postgres"]["healthcheck"]["test"][1]


def test_compose_runs_the_processors_both_sinks_and_the_page():
    ran = {tuple(commands(svc)[0][:4]) for svc in psmesh_services().values()}
    assert ("psmesh", "processors", "run", "--web-port") in ran
    assert ("psmesh", "sink", "run", "erp") in ran
    assert ("psmesh", "sink", "run", "reporting") in ran
    assert ("psmesh", "page", "serve", "--host") in ran


@pytest.mark.parametrize("name", [n for n, s in compose()["services"].items() if s.get("image") == PSMESH_IMAGE])
def test_every_psmesh_service_runs_a_real_psmesh_command(name):
    runner = CliRunner()
    for argv in commands(services()[name]):
        assert argv[0] == "psmesh", f"{name}: {argv}"
        path, command = _resolve(argv[1:])
        result = runner.invoke(main, [*path, "--help"], prog_name="psmesh")
        assert result.exit_code == 0, f"{name}: psmesh {' '.join(path)} --help: {result.output}"
        assert f"psmesh {' '.join(path)}" in result.output
        for token in argv[1 + len(path):]:
            if token.startswith("--"):
                assert token.split("=")[0] in result.output, f"{name}: psmesh {' '.join(path)} has no {token}"
        # Parse the arguments as the command would (choices, types, required arguments) without running it.
        command.make_context(path[-1], argv[1 + len(path):])


def _resolve(tokens: list[str]) -> tuple[list[str], click.Command]:
    """The command path (``["cdc", "run"]``) at the start of ``tokens`` and the click command it names."""
    command: click.Command = main
    path: list[str] = []
    ctx = click.Context(main)
    for token in tokens:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(ctx, token)
        assert sub is not None, f"psmesh {' '.join(path)} has no command {token!r}"
        command, path = sub, [*path, token]
    assert not isinstance(command, click.Group), f"psmesh {' '.join(path)} is a group, not a command"
    return path, command


def test_psmesh_services_bind_all_interfaces_restart_and_wait_for_init():
    svcs = services()
    init = svcs["init"]
    assert init.get("restart") == "no"
    assert init["depends_on"]["registry"]["condition"] == "service_healthy"
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert [argv[:3] for argv in commands(init)] == [["psmesh", "topology", "apply"], ["psmesh", "sources", "create"]]
    assert option_value(commands(init)[0], "--cluster") == "local"
    for name, svc in psmesh_services().items():
        env = svc.get("environment", {})
        assert all(key.startswith("PSMESH_") for key in env), f"{name}: configured only through PSMESH_* variables"
        assert env.get("PSMESH_KAFKA_BOOTSTRAP") == "kafka:29092" and env.get("PSMESH_PG_HOST") == "postgres"
        assert env.get("PSMESH_METRICS_HOST") == "0.0.0.0", f"{name}: /metrics must be reachable from Prometheus"
        if name == "processors":  # the worker's views and /metrics listen on PSMESH_PROCESSORS_HOST
            assert env.get("PSMESH_PROCESSORS_HOST") == "0.0.0.0", "processors: /metrics must be reachable"
        (argv,) = commands(svc)
        if "--host" in argv:
            assert option_value(argv, "--host") == "0.0.0.0", name
        if name != "registry":
            assert svc["depends_on"]["init"]["condition"] == "service_completed_successfully", name
        port = metrics_port(svc)
        assert f"127.0.0.1:{port}:{port}" in published(svc), f"{name}: same host port as the local stack"
        assert f"localhost:{port}/" in " ".join(svc["healthcheck"]["test"]), f"{name}: healthcheck probes its own port"


def test_the_image_keeps_the_source_tree_that_the_code_reads_beside_itself():
    # schemas/ and topology.yaml are found relative to the packages' files, so the packages must be
    # installed in place (editable), not copied into site-packages away from /app/schemas.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install[^\n]* -e \.", dockerfile)
    for part in ("schemas", "topology.yaml", *CODE_PACKAGES):
        assert re.search(rf"^COPY .*\b{re.escape(part)}\b", dockerfile, re.M), part


# ---- Prometheus -------------------------------------------------------------------------------------------------
def test_prometheus_scrapes_every_psmesh_service_at_its_service_name_and_metrics_port_every_5s():
    assert prometheus()["global"]["scrape_interval"] == "5s"
    jobs = scrape_targets()
    for name, svc in psmesh_services().items():
        assert jobs.get(name) == [f"{name}:{metrics_port(svc)}"], f"no job {name} scraping {name}:{metrics_port(svc)}"


def test_every_scrape_target_is_a_compose_service_serving_that_port():
    svcs = services()
    for job, targets in scrape_targets().items():
        assert targets, job
        for target in targets:
            host, port = target.rsplit(":", 1)
            assert host == job, f"job {job} scrapes {target}: job names match the services"
            assert host in svcs, f"{target}: no compose service {host}"
            svc = svcs[host]
            served = [v for argv in commands(svc) for v in (option_value(argv, o) for o in PORT_OPTIONS) if v]
            served += [str(v) for v in svc.get("environment", {}).values()]
            assert port in served, f"{target}: {host} does not serve port {port} in its command or environment"
    prom = svcs["prometheus"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prom["image"]), "pinned version"
    config = next(o.split("=", 1)[1] for o in prom["command"] if o.startswith("--config.file="))
    assert in_container(prom, config) == (ROOT / "docker" / "prometheus" / "prometheus.yml").resolve()
    assert "127.0.0.1:9090:9090" in published(prom)


# ---- Grafana ----------------------------------------------------------------------------------------------------
def test_grafana_mounts_the_provisioning_and_the_dashboards_that_exist_in_the_repo():
    grafana = services()["grafana"]
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"]), "pinned version"
    assert "127.0.0.1:3000:3000" in published(grafana)
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for source in mounts(grafana).values():
        assert source.is_dir(), f"{source} is mounted but does not exist"
    provisioning = in_container(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None and (provisioning / "datasources").is_dir() and (provisioning / "dashboards").is_dir()
    providers = [p for f in sorted((provisioning / "dashboards").glob("*.yml"))
                 for p in yaml.safe_load(f.read_text())["providers"]]
    assert providers
    for provider in providers:
        assert provider["type"] == "file"
        shown = in_container(grafana, provider["options"]["path"])
        assert shown is not None, f"provider path {provider['options']['path']} is not mounted"
        assert (shown / "psmesh.json").is_file()
    home = in_container(grafana, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file()


def test_grafana_lets_viewers_in_without_login_and_takes_the_admin_password_from_the_environment():
    env = services()["grafana"]["environment"]
    assert str(env["GF_AUTH_ANONYMOUS_ENABLED"]).lower() == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:-[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"])


def datasources() -> dict[str, dict]:
    provisioning = ROOT / "docker" / "grafana" / "provisioning" / "datasources"
    return {d["uid"]: d for f in sorted(provisioning.glob("*.yml")) for d in yaml.safe_load(f.read_text())["datasources"]}


def test_the_datasource_is_the_compose_prometheus():
    (source,) = datasources().values()
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


# ---- the dashboard ----------------------------------------------------------------------------------------------
def panels() -> list[dict]:
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # panels of collapsed rows
    return found


def queries() -> list[tuple[str, dict]]:
    return [(p["title"], t) for p in panels() if p["type"] != "row" for t in p["targets"]]


def test_every_panel_queries_a_provisioned_datasource():
    uids = set(datasources())
    for panel in panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]


SELECTOR = re.compile(r"\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
METRIC = re.compile(r"\bpsmesh_[A-Za-z0-9_]+\b")


def test_every_metric_and_label_on_the_dashboard_is_defined_in_the_code():
    metrics = defined_metrics()
    for title, target in queries():
        expr = target["expr"]
        names = set(METRIC.findall(expr))
        missing = names - set(metrics)
        assert not missing, f"panel {title!r} uses metrics the code does not define: {sorted(missing)}"
        labels = {"job", "instance"} | {label for n in names for label in metrics[n]}
        if any(n.endswith("_bucket") for n in names):
            labels.add("le")
        if expr.startswith("up") and not names:
            labels = {"job", "instance"}
        used = {m.split("=")[0].strip("!~ ") for s in SELECTOR.findall(expr) for m in s.split(",") if m.strip()}
        grouped = {g.strip() for s in GROUPING.findall(expr) for g in s.split(",") if g.strip()}
        assert used | grouped <= labels, f"panel {title!r}: labels {sorted((used | grouped) - labels)} do not exist"
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        assert legend <= (grouped or labels), f"panel {title!r}: legend {sorted(legend)} names labels the query drops"


def test_the_dashboard_charts_every_required_area():
    exprs = " ".join(t["expr"] for _, t in queries())
    for area, required in REQUIRED_AREAS.items():
        for metric in required:
            assert re.search(rf"\b{metric}\b", exprs), f"{area}: no panel charts {metric}"
    e2e = " ".join(t["expr"] for _, t in queries() if "psmesh_e2e_latency_seconds_bucket" in t["expr"])
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, " in e2e, f"end-to-end latency p{quantile[2:]}"
    assert any(p["type"] == "heatmap" and "psmesh_e2e_latency_seconds_bucket" in p["targets"][0]["expr"]
               for p in panels())
    ack = " ".join(t["expr"] for _, t in queries() if "psmesh_cdc_commit_to_ack_seconds_bucket" in t["expr"])
    assert "histogram_quantile(0.5, " in ack and "histogram_quantile(0.99, " in ack
    for counter in ("psmesh_sink_dead_letters_total", "psmesh_processor_dead_letters_total"):
        assert re.search(rf"increase\({counter}\[", exprs), f"{counter} over time"
    rows = {p["title"].split(" ")[0] for p in dashboard()["panels"] if p["type"] == "row"}
    assert {"Capture", "Processors", "Sinks", "End-to-end", "Dead"} <= rows


def test_the_dashboard_is_one_grid_of_distinct_panels():
    board = dashboard()
    assert board["uid"] == "psmesh" and board["title"] == "psmesh"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels():
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_every_port_is_published_on_the_loopback_unless_psmesh_bind_host_says_otherwise():
    """As the local stack binds: PostgreSQL trusts every connection, Kafka and the registry ask for no credentials."""
    for name, svc in services().items():
        for entry in svc.get("ports", []):
            assert entry.startswith("${PSMESH_BIND_HOST:-127.0.0.1}:"), f"{name}: {entry} is published on every interface"
    servers = {name: published(services()[name]) for name in ("kafka", "postgres", "registry")}
    assert servers == {"kafka": ["127.0.0.1:9092:9092"], "postgres": ["127.0.0.1:5433:5432"],
                       "registry": ["127.0.0.1:8081:8081"]}
    kafka = services()["kafka"]["environment"]
    # the host's listener advertises the port it is published on, whichever PSMESH_KAFKA_PORT moved it to
    assert "PLAINTEXT://localhost:${PSMESH_KAFKA_PORT:-9092}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert services()["kafka"]["ports"] == ["${PSMESH_BIND_HOST:-127.0.0.1}:${PSMESH_KAFKA_PORT:-9092}:9092"]


def test_the_servers_restart_as_the_services_that_need_them_do():
    for name in ("kafka", "postgres", "registry"):
        assert services()[name].get("restart") == "unless-stopped", name


def test_postgres_caps_the_wal_a_slot_holds_as_the_local_stack_does():
    from psmesh.stack.postgres import CONF

    command = services()["postgres"]["command"]
    settings = dict(command[i + 1].split("=", 1) for i, token in enumerate(command) if token == "-c")
    for name in ("wal_level", "max_slot_wal_keep_size", "logical_decoding_work_mem", "max_connections"):
        assert re.search(rf"^{name} = {re.escape(settings[name])}$", CONF, re.M), name


def test_the_long_running_psmesh_services_get_time_to_flush_on_stop():
    for name, svc in psmesh_services().items():
        if name.startswith(("cdc-", "sink-")) or name == "processors":
            assert svc.get("stop_grace_period") == "60s", name
