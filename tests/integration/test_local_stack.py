"""`psmesh dev up | status | down` on a stack of its own (own ports, own runtime dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from psmesh.stack.process import pid_alive, port_in_use

pytestmark = pytest.mark.integration

#: Below Linux's ephemeral range (32768-60999), so no outgoing connection holds them.
PORTS = {"PSMESH_KAFKA_PORT": "22092", "PSMESH_KAFKA_CONTROLLER_PORT": "22093", "PSMESH_PG_PORT": "22433", "PSMESH_REGISTRY_PORT": "22081"}


def _psmesh(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **PORTS, "PSMESH_HOME": str(home)}
    for var in ("PSMESH_KAFKA_BOOTSTRAP", "PSMESH_REGISTRY_URL", "PSMESH_PG_HOST"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "psmesh", *args], env=env, capture_output=True, text=True, timeout=300)


def _processes_under(home: Path) -> list[str]:
    """Command lines of live processes that mention the runtime directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if str(home) in cmdline and state != "Z":
            found.append(cmdline)
    return found


def test_up_twice_is_harmless_and_down_leaves_no_process(tmp_path_factory):
    home = tmp_path_factory.mktemp("stack")
    try:
        first = _psmesh(home, "dev", "up")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "started" in first.stdout

        second = _psmesh(home, "dev", "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.count("already running") == 3, second.stdout

        status = _psmesh(home, "dev", "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        parts = {p["name"]: p for p in json.loads(status.stdout)}
        assert {n: p["state"] for n, p in parts.items()} == {"kafka": "healthy", "postgres": "healthy", "registry": "healthy"}
        assert parts["postgres"]["address"] == "127.0.0.1:22433"

        with psycopg.connect("host=127.0.0.1 port=22433 user=psmesh dbname=postgres") as conn:
            assert conn.execute("show wal_level").fetchone()[0] == "logical"
            dbs = {r[0] for r in conn.execute("select datname from pg_database")}
            assert {"crm", "psa", "timeexp", "erp", "reporting"} <= dbs
        if os.geteuid() == 0:
            server = Path(f"/proc/{parts['postgres']['pid']}/status").read_text()
            assert "Uid:\t0\t" not in server, "postgres must not run as root"
        pids = [p["pid"] for p in parts.values()]
    finally:
        down = _psmesh(home, "dev", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert _processes_under(home) == []
    assert [pid for pid in pids if pid_alive(pid)] == []
    for port in PORTS.values():
        assert not port_in_use("127.0.0.1", int(port)), f"port {port} still open after down"

    after = _psmesh(home, "dev", "status")
    assert after.returncode == 1
    assert "stopped" in after.stdout


def test_up_names_the_port_when_it_is_taken(tmp_path_factory):
    import socket

    home = tmp_path_factory.mktemp("busy")
    with socket.socket() as squatter:
        # The previous test's broker may have left TIME_WAIT connections on this port.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 22092))
        squatter.listen()
        result = _psmesh(home, "dev", "up")
    _psmesh(home, "dev", "down")
    assert result.returncode != 0
    assert "port 22092" in result.stderr and "PSMESH_KAFKA_PORT" in result.stderr
