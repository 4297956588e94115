"""A private PostgreSQL cluster from Debian's packages, with ``wal_level=logical``.

The cluster lives under the runtime directory (``<home>/pg``) and listens on
loopback only. PostgreSQL refuses to run as root, so when psmesh runs as root
the cluster is owned by and started as the ``postgres`` system user (created
by Debian's package); its data directory then has to be reachable by that
user, and when ``<home>`` is not (a checkout under /root, say) it moves to
``/var/tmp/psmesh-pg-<hash of home>``. Authentication is ``trust`` on
loopback: a developer cluster, never exposed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

from psmesh.config import DATABASES, Settings
from psmesh.stack.exceptions import StackError
from psmesh.stack.process import port_in_use, tail, wait_until

logger = logging.getLogger(__name__)

MIN_VERSION = 15

CONF = """\
# written by psmesh: a private developer cluster for CDC
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{socket_dir}'
wal_level = logical
max_wal_senders = 32
max_replication_slots = 32
max_connections = 200
# logical decoding of large transactions streams to the subscriber (pgoutput v2)
logical_decoding_work_mem = 64MB
wal_sender_timeout = 60s
shared_buffers = 256MB
fsync = on
synchronous_commit = on
max_slot_wal_keep_size = 4GB
log_line_prefix = '%m [%p] %d '
log_min_messages = warning
"""

HBA = """\
# written by psmesh: loopback only
local   all             all                                     trust
local   replication     all                                     trust
host    all             all             127.0.0.1/32            trust
host    replication     all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
host    replication     all             ::1/128                 trust
"""


def find_bindir() -> Path:
    """The newest PostgreSQL ≥ 15 installed by Debian's packages (or on PATH)."""
    candidates: list[tuple[int, Path]] = []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for child in root.iterdir():
            if child.name.isdigit() and (child / "bin" / "pg_ctl").exists():
                candidates.append((int(child.name), child / "bin"))
    if not candidates and (pg_ctl := shutil.which("pg_ctl")):
        out = subprocess.run([pg_ctl, "--version"], capture_output=True, text=True).stdout
        if m := re.search(r"(\d+)", out):
            candidates.append((int(m.group(1)), Path(pg_ctl).resolve().parent))
    usable = sorted(c for c in candidates if c[0] >= MIN_VERSION)
    if not usable:
        raise StackError(
            f"postgres: no PostgreSQL {MIN_VERSION}+ server found (looked in {root} and PATH); "
            "run ./dev setup or apt-get install postgresql"
        )
    return usable[-1][1]


def _reachable_by(user: str, path: Path) -> bool:
    """Can ``user`` traverse every directory above ``path``?"""
    pw = pwd.getpwnam(user)
    for parent in [*reversed(path.parents)]:
        if not parent.exists():
            break
        st = parent.stat()
        mode = st.st_mode
        if st.st_uid == pw.pw_uid:
            ok = mode & 0o100
        elif st.st_gid == pw.pw_gid:
            ok = mode & 0o010
        else:
            ok = mode & 0o001
        if not ok:
            return False
    return True


class PostgresServer:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_as = self._os_user()
        self.dir = self._cluster_dir()
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "run"
        # The server writes its own log, so it must be somewhere its user can reach.
        reachable = self.dir == settings.home.resolve() / "pg"
        self.logfile = (settings.home / "logs" if reachable else self.dir) / "postgres.log"

    # --- where and as whom -------------------------------------------------
    @staticmethod
    def _os_user() -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StackError(
                "postgres: running as root but there is no 'postgres' system user to run the server as; "
                "apt-get install postgresql creates it"
            ) from exc
        return "postgres"

    def _cluster_dir(self) -> Path:
        home = self.settings.home.resolve()
        preferred = home / "pg"
        if self.run_as is None or _reachable_by(self.run_as, preferred):
            return preferred
        digest = hashlib.sha1(str(home).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"psmesh-pg-{digest}"

    def _cmd(self, *argv: str) -> list[str]:
        if self.run_as is None:
            return list(argv)
        return ["runuser", "-u", self.run_as, "--", *argv]

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(self._cmd(*argv), capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            raise StackError(f"postgres: {' '.join(argv[:2])} failed:\n{(result.stdout + result.stderr)[-2000:]}")
        return result

    @property
    def address(self) -> str:
        return f"{self.settings.bind_host}:{self.settings.pg_port}"

    # --- lifecycle -----------------------------------------------------------
    def _initdb(self, bindir: Path) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            shutil.chown(self.dir, self.run_as, self.run_as)
            shutil.chown(self.socket_dir, self.run_as, self.run_as)
        logger.info("initialising postgresql cluster in %s", self.data)
        self._run(
            str(bindir / "initdb"), "-D", str(self.data), "-U", self.settings.pg_user,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions",
        )
        (self.data / "postgresql.auto.conf").write_text("")
        conf = CONF.format(host=self.settings.bind_host, port=self.settings.pg_port, socket_dir=self.socket_dir)
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.write("\n" + conf)
        (self.data / "pg_hba.conf").write_text(HBA)
        if self.run_as:
            for path in (self.data / "postgresql.conf", self.data / "pg_hba.conf", self.data / "postgresql.auto.conf"):
                shutil.chown(path, self.run_as, self.run_as)

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError, PermissionError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def healthy(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.settings.pg_dsn("postgres"), connect_timeout=3) as conn:
                conn.execute("select 1")
        except psycopg.Error:
            return False
        return True

    def start(self, timeout: float = 60.0) -> str:
        if self.running():
            if wait_until(self.healthy, timeout=timeout):
                self.ensure_databases()
                return "already running"
            raise StackError(f"postgres: server runs (pid {self.pid()}) but does not answer on {self.address}; see {self.logfile}")
        if port_in_use(self.settings.bind_host, self.settings.pg_port):
            raise StackError(
                f"postgres: port {self.settings.pg_port} on {self.settings.bind_host} is taken by another process; "
                "stop it or set PSMESH_PG_PORT"
            )
        bindir = find_bindir()
        self._initdb(bindir)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        if self.run_as and not self.logfile.exists():
            self.logfile.touch()
        if self.run_as:
            shutil.chown(self.logfile, self.run_as, self.run_as)
        result = self._run(
            str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", str(int(timeout)), "start",
            check=False,
        )
        if result.returncode != 0 or not wait_until(self.healthy, timeout=15):
            raise StackError(
                f"postgres: server did not start on {self.address}:\n{result.stdout}{result.stderr}\n"
                f"last lines of {self.logfile}:\n{tail(self.logfile)}"
            )
        self.ensure_databases()
        return "started"

    def ensure_databases(self) -> None:
        """Create the databases of the mesh (sources and the reporting store) when absent."""
        import psycopg

        with psycopg.connect(self.settings.pg_dsn("postgres"), autocommit=True) as conn:
            present = {row[0] for row in conn.execute("select datname from pg_database")}
            for db in DATABASES:
                if db not in present:
                    conn.execute(f'create database "{db}"')
                    logger.info("created database %s", db)

    def stop(self) -> bool:
        if not self.running():
            return False
        bindir = find_bindir()
        self._run(str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop", check=False)
        if self.running():
            pid = self.pid()
            if pid:
                os.kill(pid, 9)
        return True
