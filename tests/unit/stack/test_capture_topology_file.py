"""The capture reads the topology file it is given: a missing one is an error, and the demo passes its own on."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from psmesh.cli import main
from psmesh.config import Settings
from psmesh.stack.services import CaptureService
from streams.cli import capture_config

MISSING = "no-such-topology.yaml"


@pytest.mark.parametrize("command", [["cdc", "status"], ["cdc", "schemas", "--check"]])
def test_a_missing_topology_file_is_an_error_naming_it_not_the_repositorys_file(command, tmp_path):
    missing = tmp_path / MISSING
    result = CliRunner().invoke(main, [*command, "--file", str(missing)], env={"PSMESH_PG_PORT": "1"})
    assert result.exit_code == 1
    assert f"{missing}: cannot read the file: No such file or directory" in result.output


def test_the_capture_refuses_a_missing_topology_file(tmp_path):
    with pytest.raises(click.ClickException, match=f"{MISSING}: cannot read the file"):
        capture_config("crm", tmp_path / MISSING)


def test_every_cdc_command_documents_its_file_option():
    for command in ("run", "status", "schemas"):
        result = CliRunner().invoke(main, ["cdc", command, "--help"])
        assert re.search(r"--file FILE +Topology file", result.output), result.output


def test_a_capture_started_with_a_topology_file_is_given_that_file(tmp_path, monkeypatch):
    topology_file = tmp_path / "mine.yaml"
    service = CaptureService(Settings(home=tmp_path, cdc_metrics_port_base=19900), "crm", topology_file=topology_file)
    started: list[list[str]] = []

    def start(argv, env=None, cwd=None):
        started.append(argv)
        service.status_file.parent.mkdir(parents=True, exist_ok=True)
        service.status_file.write_text("{}")

    monkeypatch.setattr(service.process, "running", lambda: False)
    monkeypatch.setattr(service.process, "start", start)
    assert service.start(timeout=5) == "started"
    (argv,) = started
    assert argv[argv.index("--file") + 1] == str(topology_file.resolve())


def test_a_capture_started_without_a_file_lets_the_capture_choose(tmp_path, monkeypatch):
    service = CaptureService(Settings(home=tmp_path, cdc_metrics_port_base=19900), "crm")
    started: list[list[str]] = []
    monkeypatch.setattr(service.process, "running", lambda: False)
    monkeypatch.setattr(service.process, "start", lambda argv, env=None, cwd=None: (
        started.append(argv), service.status_file.parent.mkdir(parents=True, exist_ok=True),
        service.status_file.write_text("{}")))
    service.start(timeout=5)
    assert "--file" not in started[0]


@pytest.mark.parametrize("cluster, replication", [(None, 3), ("local", 1), ("no-such-cluster", 3)])
def test_the_capture_would_create_a_missing_change_topic_as_the_topology_declares_it(monkeypatch, cluster,
                                                                                      replication):
    """Run before psmesh topology apply (a table just added), the capture creates the topic as apply would, not
    with one replica: apply never changes a live topic's replication factor afterwards."""
    if cluster is None:
        monkeypatch.delenv("PSMESH_CLUSTER", raising=False)
    else:
        monkeypatch.setenv("PSMESH_CLUSTER", cluster)
    config = capture_config("crm")
    topic = "crm.public.accounts"
    assert config.topic_partitions[topic] == 6
    assert config.topic_replication[topic] == replication
    assert config.topic_configs[topic] == {"cleanup.policy": "compact"}


def test_a_sink_started_with_the_demos_topology_file_is_given_that_file(tmp_path):
    """The sinks take their target database and dead-letter topic from the topology: the one the demo applied."""
    from psmesh.stack.services import sink_service

    topology_file = tmp_path / "mine.yaml"
    service = sink_service(Settings(home=tmp_path, erp_sink_metrics_port=19901), "erp", None, topology_file)
    assert service.argv == ["sink", "run", "erp", "--metrics-port", "19901", "--file", str(topology_file.resolve())]
    assert "--file" not in sink_service(Settings(home=tmp_path, erp_sink_metrics_port=19901), "erp").argv
