"""Apache Kafka in KRaft mode, from Maven Central's jars, on the machine's Java.

The jars are fetched once with ``mvn dependency:copy-dependencies`` (pom.xml
beside this file, version pinned there and in :data:`psmesh.config.KAFKA_VERSION`)
into ``<cache>/kafka-<version>/libs`` and shared by every runtime directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path

from psmesh.config import Settings
from psmesh.stack.exceptions import StackError
from psmesh.stack.process import ManagedProcess, port_in_use, tail, wait_until

logger = logging.getLogger(__name__)

POM = Path(__file__).with_name("kafka") / "pom.xml"

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = warn
logger.controller.name = org.apache.kafka.controller
logger.controller.level = warn
"""


def jar_dir(settings: Settings) -> Path:
    return settings.cache / f"kafka-{settings.kafka_version}" / "libs"


def ensure_jars(settings: Settings) -> Path:
    """Fetch the broker's jars from Maven Central unless the cache has them."""
    libs = jar_dir(settings)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("kafka: Maven (mvn) is not installed; run ./dev setup or apt-get install maven")
    if shutil.which("java") is None:
        raise StackError("kafka: no java on PATH; Kafka needs Java 17 (apt-get install openjdk-17-jre-headless)")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    logger.info("fetching kafka %s jars from maven central into %s", settings.kafka_version, libs)
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-Dkafka.version={settings.kafka_version}",
        f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(
            f"kafka: mvn could not fetch org.apache.kafka:kafka_2.13:{settings.kafka_version}:\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    if not any(tmp.glob(f"kafka_2.13-{settings.kafka_version}.jar")):
        raise StackError(f"kafka: mvn ran but kafka_2.13-{settings.kafka_version}.jar is not in {tmp}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(settings.kafka_version)
    return libs


class KafkaServer:
    """One KRaft node acting as broker and controller, on loopback."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.home / "kafka"
        self.data = self.dir / "data"
        self.config = self.dir / "server.properties"
        self.process = ManagedProcess(self.name, settings.home)

    @property
    def address(self) -> str:
        return f"{self.settings.bind_host}:{self.settings.kafka_port}"

    def _write_config(self) -> None:
        s = self.settings
        host = s.bind_host
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{host}:{s.kafka_controller_port}",
                    f"listeners=PLAINTEXT://{host}:{s.kafka_port},CONTROLLER://{host}:{s.kafka_controller_port}",
                    f"advertised.listeners=PLAINTEXT://{host}:{s.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data}",
                    # Topics are declared in topology.yaml and created by `psmesh topology apply`
                    # or by the service that owns them, never by a typo in a consumer.
                    "auto.create.topics.enable=false",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=4",
                    f"group.initial.rebalance.delay.ms={s.kafka_initial_rebalance_delay_ms}",
                    "log.segment.bytes=104857600",
                    "log.cleaner.dedupe.buffer.size=33554432",
                    "",
                ]
            )
        )
        (self.dir / "log4j2.properties").write_text(LOG4J2)

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
        if java is None or not os.path.exists(java):
            raise StackError("kafka: no java on PATH")
        return [
            java,
            f"-Xmx{self.settings.kafka_heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _format(self, libs: Path) -> None:
        if (self.data / "meta.properties").exists():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        result = subprocess.run(
            self._java(libs, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config)),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"kafka: formatting {self.data} failed:\n{(result.stdout + result.stderr)[-2000:]}")

    def healthy(self, timeout: float = 3.0) -> bool:
        from confluent_kafka.admin import AdminClient

        if not port_in_use(self.settings.bind_host, self.settings.kafka_port):
            return False
        admin = AdminClient({"bootstrap.servers": self.address, "log_level": 0})
        try:
            md = admin.list_topics(timeout=timeout)
        except Exception:  # noqa: BLE001 - any client error means "not healthy yet"
            return False
        return bool(md.brokers)

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker unless it runs already; return what happened."""
        if self.process.running():
            if wait_until(self.healthy, timeout=timeout, alive=self.process.running):
                return "already running"
            raise StackError(f"kafka: process {self.process.pid()} runs but does not answer on {self.address}; see {self.process.logfile}")
        for port in (self.settings.kafka_port, self.settings.kafka_controller_port):
            if port_in_use(self.settings.bind_host, port):
                raise StackError(
                    f"kafka: port {port} on {self.settings.bind_host} is taken by another process; "
                    "stop it or set PSMESH_KAFKA_PORT / PSMESH_KAFKA_CONTROLLER_PORT"
                )
        libs = ensure_jars(self.settings)
        self._write_config()
        self._format(libs)
        self.process.start(self._java(libs, "kafka.Kafka", str(self.config)), cwd=self.dir)
        if not wait_until(self.healthy, timeout=timeout, interval=0.5, alive=self.process.running):
            log = tail(self.process.logfile, 25)
            self.process.stop(timeout=5)
            raise StackError(f"kafka: broker did not become ready on {self.address}; last lines of {self.process.logfile}:\n{log}")
        return "started"

    def stop(self) -> bool:
        # A controlled shutdown of a single KRaft node takes a few seconds.
        return self.process.stop(timeout=30)


def new_cluster_id() -> str:
    """A random cluster id as Kafka's ``Uuid.randomUuid()`` makes one: URL-safe base64 of 16 bytes, never starting
    with '-', which the storage tool's argument parser would take for an option (a CI run failed that way)."""
    while True:
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
