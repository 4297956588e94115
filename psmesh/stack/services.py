"""psmesh's own long-running services (capture today) as local background processes."""

from __future__ import annotations

import sys
import time

from psmesh.config import Settings
from psmesh.stack.exceptions import StackError
from psmesh.stack.process import ManagedProcess, tail


class CaptureService:
    """``psmesh cdc run <source>`` in the background, with a pid file and a log."""

    def __init__(self, settings: Settings, source: str) -> None:
        self.settings = settings
        self.source = source
        self.process = ManagedProcess(f"cdc-{source}", settings.home)
        self.status_file = settings.home / "cdc" / f"{source}.status.json"

    def start(self, timeout: float = 120.0) -> str:
        if self.process.running():
            return "already running"
        self.status_file.unlink(missing_ok=True)
        self.process.start([sys.executable, "-m", "psmesh", "cdc", "run", self.source],
                           env={"PSMESH_HOME": str(self.settings.home)})
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


def running_services(settings: Settings) -> list[CaptureService]:
    run_dir = settings.home / "run"
    if not run_dir.exists():
        return []
    return [CaptureService(settings, p.stem[len("cdc-"):]) for p in sorted(run_dir.glob("cdc-*.pid"))]
