"""Session fixtures: the real Kafka, PostgreSQL and schema registry.

Where a Docker engine answers, the servers come from docker-compose.yml through
testcontainers (as compose project ``psmesh-test``, on the same ports as the
local path); otherwise (the build machines have no Docker engine) the
project starts them as local processes with :class:`psmesh.stack.LocalStack`,
in ``.psmesh-test/`` on ports of their own so a developer's ``psmesh dev up``
stack is left alone. A stack that was already running is reused and left
running; one this session started is stopped at the end unless
``PSMESH_TEST_KEEP_STACK=1``.

Integration tests never skip silently in CI: with ``CI`` set, a stack that
cannot start is an error.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from psmesh.config import Settings
from psmesh.stack import LocalStack, StackError

ROOT = Path(__file__).resolve().parent.parent


def _docker_engine() -> bool:
    if os.environ.get("PSMESH_TEST_DOCKER", "auto") == "never" or shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def _environment(values: dict[str, str]):
    """``values`` in the environment while the block runs (testcontainers runs docker compose with ours)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _compose_running(compose) -> bool:
    """Whether the project's servers run already (a stack kept by PSMESH_TEST_KEEP_STACK=1): reused, left running."""
    try:
        result = subprocess.run([*compose.docker_compose_command(), "ps", "--services", "--status", "running"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and {"kafka", "postgres", "registry"} <= set(result.stdout.split())


def _test_settings() -> Settings:
    return Settings(
        home=Path(os.environ.get("PSMESH_TEST_HOME", ROOT / ".psmesh-test")),
        kafka_port=int(os.environ.get("PSMESH_TEST_KAFKA_PORT", 19092)),
        kafka_controller_port=int(os.environ.get("PSMESH_TEST_KAFKA_CONTROLLER_PORT", 19093)),
        pg_port=int(os.environ.get("PSMESH_TEST_PG_PORT", 15433)),
        registry_port=int(os.environ.get("PSMESH_TEST_REGISTRY_PORT", 18081)),
        kafka_bootstrap=None,
        registry_url=None,
        pg_host=None,
    )


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"integration stack unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"integration stack unavailable: {reason}")


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """Settings that point at a running stack for this test session."""
    if _docker_engine():
        from testcontainers.compose import DockerCompose

        # Only the servers: the tests run their own captures, processors and sinks. A project and ports of their
        # own (docker compose reads them from the environment, docker-compose.yml's ${PSMESH_*_PORT}), so that an
        # operator's `docker compose up` stack and its volumes are neither reused nor taken down.
        settings = _test_settings()
        env = {"COMPOSE_PROJECT_NAME": "psmesh-test", "PSMESH_BIND_HOST": "127.0.0.1",
               "PSMESH_KAFKA_PORT": str(settings.kafka_port), "PSMESH_PG_PORT": str(settings.pg_port),
               "PSMESH_REGISTRY_PORT": str(settings.registry_port)}
        compose = DockerCompose(str(ROOT), compose_file_name="docker-compose.yml", build=True, wait=True,
                                services=["kafka", "postgres", "registry"])
        with _environment(env):
            running = _compose_running(compose)
            try:
                compose.start()
            except Exception as exc:  # noqa: BLE001 - docker compose's error, reported as the stack's
                _unavailable(f"docker compose up: {exc}")
        try:
            yield settings
        finally:
            if not running and os.environ.get("PSMESH_TEST_KEEP_STACK") != "1":
                with _environment(env):
                    compose.stop()  # down --volumes, of project psmesh-test only
        return

    settings = _test_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(settings)
    # One session at a time starts the stack; the others wait and reuse it.
    with (settings.home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            outcome = stack.up()
        except StackError as exc:
            _unavailable(str(exc))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    started_here = any(v == "started" for v in outcome.values())
    yield settings
    if started_here and os.environ.get("PSMESH_TEST_KEEP_STACK") != "1":
        stack.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_settings: Settings) -> str:
    return stack_settings.bootstrap_servers


@pytest.fixture(scope="session")
def registry_url(stack_settings: Settings) -> str:
    return stack_settings.schema_registry_url


@pytest.fixture(scope="session")
def pg_dsn(stack_settings: Settings):
    """``pg_dsn("crm")`` is a libpq connection string to that database of the stack."""
    return stack_settings.pg_dsn
