"""A running demo for the tests that look at the mesh the way its operators do.

``running_demo`` runs ``psmesh demo --weeks 3`` once per session on ports of
its own, in a temporary runtime directory, and leaves every part running
(stack, captures, processors, sinks, executive page) until the session ends,
so ``psmesh status`` and the executive page are tested against live numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from psmesh.config import Settings

#: Ports of the demo's stack and services; no other test stack uses them. All below Linux's
#: ephemeral range (32768-60999): a listener there can find its port taken by an outgoing connection.
DEMO_PORTS = {
    "PSMESH_KAFKA_PORT": "23092",
    "PSMESH_KAFKA_CONTROLLER_PORT": "23093",
    "PSMESH_PG_PORT": "23433",
    "PSMESH_REGISTRY_PORT": "23081",
    "PSMESH_PROCESSORS_PORT": "23066",
    "PSMESH_ERP_SINK_METRICS_PORT": "23401",
    "PSMESH_REPORTING_SINK_METRICS_PORT": "23402",
    "PSMESH_PAGE_PORT": "23090",
    "PSMESH_CDC_METRICS_PORT_BASE": "23411",
}


@dataclass
class RunningDemo:
    home: Path
    env: dict[str, str]
    settings: Settings
    #: What the demo printed.
    output: str

    def psmesh(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run ``psmesh ARGS`` against this demo."""
        return subprocess.run([sys.executable, "-m", "psmesh", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def running_demo(tmp_path_factory) -> RunningDemo:
    home = tmp_path_factory.mktemp("running-demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSMESH_")}
    env.update(DEMO_PORTS, PSMESH_HOME=str(home))
    settings = Settings(home=home, **{k[len("PSMESH_"):].lower(): v for k, v in DEMO_PORTS.items()})
    demo = RunningDemo(home, env, settings, output="")
    try:
        run = demo.psmesh("demo", "--weeks", "3", timeout=900)
        demo.output = run.stdout
        if run.returncode != 0:
            pytest.fail(f"psmesh demo failed ({run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}", pytrace=False)
        yield demo
    finally:
        demo.psmesh("dev", "down", timeout=300)
