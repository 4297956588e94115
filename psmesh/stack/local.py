"""The whole local stack: Kafka, then PostgreSQL, then the registry (which needs Kafka)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from psmesh.config import Settings
from psmesh.stack.kafka import KafkaServer
from psmesh.stack.postgres import PostgresServer
from psmesh.stack.registry import RegistryService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # "healthy" | "unhealthy" | "stopped"
    address: str
    log: str
    pid: int | None = None

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"

    def as_dict(self) -> dict:
        return asdict(self)


class LocalStack:
    """Starts, stops and inspects the local servers. Every method is safe to repeat."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = KafkaServer(settings)
        self.postgres = PostgresServer(settings)
        self.registry = RegistryService(settings)

    def up(self, progress=lambda name, what, seconds: None) -> dict[str, str]:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        outcome: dict[str, str] = {}
        for part in (self.kafka, self.postgres, self.registry):
            started = time.monotonic()
            outcome[part.name] = part.start()
            progress(part.name, outcome[part.name], time.monotonic() - started)
        return outcome

    def down(self) -> dict[str, bool]:
        from psmesh.stack.services import running_services

        # psmesh services first (they use all three), then reverse start order:
        # the registry writes to Kafka.
        stopped = {svc.name: svc.stop() for svc in running_services(self.settings)}
        stopped.update({part.name: part.stop() for part in (self.registry, self.postgres, self.kafka)})
        return stopped

    def status(self) -> list[ComponentStatus]:
        out = []
        for part, running, pid, log in (
            (self.kafka, self.kafka.process.running(), self.kafka.process.pid(), self.kafka.process.logfile),
            (self.postgres, self.postgres.running(), self.postgres.pid(), self.postgres.logfile),
            (self.registry, self.registry.process.running(), self.registry.process.pid(), self.registry.process.logfile),
        ):
            if not running:
                state = "stopped"
            else:
                state = "healthy" if part.healthy() else "unhealthy"
            out.append(ComponentStatus(part.name, state, part.address, str(log), pid if running else None))
        from psmesh.stack.services import running_services

        for service in running_services(self.settings):
            out.append(ComponentStatus(service.name, service.state(), service.address,
                                       str(service.process.logfile), service.process.pid()))
        return out
