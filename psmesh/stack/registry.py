"""The schema registry (``psmesh.registry``) as a local process."""

from __future__ import annotations

import sys

import httpx

from psmesh.config import Settings
from psmesh.stack.exceptions import StackError
from psmesh.stack.process import ManagedProcess, port_in_use, tail, wait_until


class RegistryService:
    name = "registry"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process = ManagedProcess(self.name, settings.home)

    @property
    def address(self) -> str:
        return f"http://{self.settings.bind_host}:{self.settings.registry_port}"

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.address}/subjects", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout: float = 60.0) -> str:
        if self.process.running():
            if wait_until(self.healthy, timeout=timeout, alive=self.process.running):
                return "already running"
            raise StackError(f"registry: process {self.process.pid()} runs but {self.address} does not answer; see {self.process.logfile}")
        if port_in_use(self.settings.bind_host, self.settings.registry_port):
            raise StackError(
                f"registry: port {self.settings.registry_port} on {self.settings.bind_host} is taken by another process; "
                "stop it or set PSMESH_REGISTRY_PORT"
            )
        self.process.start(
            [
                sys.executable, "-m", "psmesh.registry",
                "--bootstrap-servers", self.settings.bootstrap_servers,
                "--host", self.settings.bind_host,
                "--port", str(self.settings.registry_port),
                "--topic", self.settings.registry_topic,
            ]
        )
        if not wait_until(self.healthy, timeout=timeout, alive=self.process.running):
            log = tail(self.process.logfile, 25)
            self.process.stop(timeout=5)
            raise StackError(f"registry: did not become ready on {self.address}; last lines of {self.process.logfile}:\n{log}")
        return "started"

    def stop(self) -> bool:
        return self.process.stop(timeout=15)
