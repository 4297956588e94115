"""psmesh's own long-running services as local background processes.

One capture per source (``cdc-<source>``), one processor worker
(``processors``) and the two sinks (``sink-erp``, ``sink-reporting``), each
with a pid file and a log under the runtime directory.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from psmesh.config import Settings, settings_env
from psmesh.ports import capture_metrics_port, default_topology, sink_metrics_port
from psmesh.stack.exceptions import StackError
from psmesh.stack.process import ManagedProcess, tail

if TYPE_CHECKING:
    from psmesh.topology.model import Topology


class CaptureService:
    """``psmesh cdc run <source>`` in the background, with a pid file and a log.

    ``topology_file``, when given, is passed on as ``--file``: the capture reads
    the same file that was applied, not the one its working directory would give.
    """

    def __init__(self, settings: Settings, source: str, topology: Topology | None = None,
                 topology_file: Path | None = None) -> None:
        self.settings = settings
        self.source = source
        self.topology_file = topology_file
        self.name = f"cdc-{source}"
        self.metrics_port = capture_metrics_port(settings, topology or default_topology(), source)
        self.address = (f"http://{settings.bind_host}:{self.metrics_port}/metrics" if self.metrics_port
                        else f"slot of {source}")
        self.process = ManagedProcess(self.name, settings.home)
        self.status_file = settings.home / "cdc" / f"{source}.status.json"

    def start(self, timeout: float = 120.0) -> str:
        if self.process.running():
            return "already running"
        self.status_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "psmesh", "cdc", "run", self.source, "--metrics-port", str(self.metrics_port or 0)]
        if self.topology_file is not None:
            argv += ["--file", str(self.topology_file.resolve())]
        self.process.start(argv, env=settings_env(self.settings))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status_file.exists():
                return "started"
            if not self.process.running():
                raise StackError(f"cdc-{self.source}: exited at start; last lines of {self.process.logfile}:\n{tail(self.process.logfile)}")
            time.sleep(0.3)
        raise StackError(f"cdc-{self.source}: not streaming after {timeout:.0f}s; see {self.process.logfile}")

    def stop(self) -> bool:
        return self.process.stop(timeout=30)

    def state(self, stale_after: float = 30.0) -> str:
        """healthy: running and its status file was refreshed lately; unhealthy: running but silent."""
        if not self.process.running():
            return "stopped"
        try:
            age = time.time() - self.status_file.stat().st_mtime
        except FileNotFoundError:
            return "unhealthy"
        return "healthy" if age <= stale_after else "unhealthy"


class HttpService:
    """A psmesh service whose health is an HTTP port that answers (its Prometheus metrics)."""

    def __init__(self, settings: Settings, name: str, argv: list[str], port: int) -> None:
        self.settings = settings
        self.name = name
        self.argv = argv
        self.port = port
        self.process = ManagedProcess(name, settings.home)

    @property
    def address(self) -> str:
        return f"http://{self.settings.bind_host}:{self.port}/metrics"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.address, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def start(self, timeout: float = 120.0) -> str:
        if self.process.running():
            return "already running"
        self.process.start([sys.executable, "-m", "psmesh", *self.argv], env=settings_env(self.settings))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._answers():
                return "started"
            if not self.process.running():
                raise StackError(f"{self.name}: exited at start; last lines of {self.process.logfile}:\n{tail(self.process.logfile)}")
            time.sleep(0.3)
        raise StackError(f"{self.name}: not answering on {self.address} after {timeout:.0f}s; see {self.process.logfile}")

    def stop(self) -> bool:
        return self.process.stop(timeout=30)

    def state(self) -> str:
        if not self.process.running():
            return "stopped"
        return "healthy" if self._answers() else "unhealthy"


def processor_service(settings: Settings) -> HttpService:
    """``psmesh processors run``, listening where the stack's other parts and its health check reach it: on
    PSMESH_BIND_HOST (unless PSMESH_PROCESSORS_HOST says otherwise), as the page, with that address as its URL
    unless PSMESH_PROCESSORS_URL gives one."""
    port = settings.processors_port
    argv = ["processors", "run", "--web-port", str(port), "--host", settings.processors_host or settings.bind_host]
    if settings.processors_url is None:
        host = settings.bind_host
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host) or (f"[{host}]" if ":" in host else host)
        argv += ["--url", f"http://{host}:{port}"]
    return HttpService(settings, "processors", argv, port)


def sink_service(settings: Settings, sink: str, topology: Topology | None = None,
                 topology_file: Path | None = None) -> HttpService:
    """``psmesh sink run``; given the topology file the demo applied, it reads that one (as the captures do)."""
    port = sink_metrics_port(settings, topology or default_topology(), sink)
    argv = ["sink", "run", sink, "--metrics-port", str(port)]
    if topology_file is not None:
        argv += ["--file", str(topology_file.resolve())]
    return HttpService(settings, f"sink-{sink}", argv, port)


def page_service(settings: Settings) -> HttpService:
    """``psmesh page serve``: the executive page (it serves /metrics, which answers while it runs)."""
    port = settings.page_port
    return HttpService(settings, "page", ["page", "serve", "--host", settings.bind_host, "--port", str(port)], port)


def running_services(settings: Settings) -> list[CaptureService | HttpService]:
    """The services with a pid file, in stopping order: the page, sinks, processors, then captures."""
    run_dir = settings.home / "run"
    if not run_dir.exists():
        return []
    found: list[CaptureService | HttpService] = []
    topology = default_topology()  # read once: it gives every capture's and sink's metrics port
    if (run_dir / "page.pid").exists():
        found.append(page_service(settings))
    for sink in ("reporting", "erp"):
        if (run_dir / f"sink-{sink}.pid").exists():
            found.append(sink_service(settings, sink, topology))
    if (run_dir / "processors.pid").exists():
        found.append(processor_service(settings))
    found += [CaptureService(settings, p.stem[len("cdc-"):], topology) for p in sorted(run_dir.glob("cdc-*.pid"))]
    return found
