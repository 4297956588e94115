"""CLI behaviour that needs no server: bad options and an unreachable cluster."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from psmesh.topology.cli import topology as topology_cli


def test_unknown_cluster_name_is_a_usage_error_listing_the_clusters(docs):
    result = CliRunner().invoke(
        topology_cli, ["plan", "--file", str(docs.repo / "topology.yaml"), "--cluster", "staging"]
    )
    assert result.exit_code == 2
    assert "unknown cluster 'staging' (clusters: local, production)" in result.output


def test_plan_against_an_unreachable_cluster_exits_2_naming_it(docs):
    result = CliRunner().invoke(
        topology_cli,
        ["plan", "--file", str(docs.repo / "topology.yaml"), "--bootstrap-servers", "127.0.0.1:1", "--timeout", "2"],
    )
    assert result.exit_code == 2
    assert "error: 127.0.0.1:1: cannot read the cluster's topics:" in result.output


def test_plan_and_apply_refuse_an_invalid_topology_before_touching_a_cluster(doc, docs, tmp_path):
    doc["topics"][0]["partitions"] = 0
    path = tmp_path / "topology.yaml"
    path.write_text(docs.dump(doc))
    for command in ("plan", "apply"):
        result = CliRunner().invoke(topology_cli, [command, "--file", str(path), "--bootstrap-servers", "127.0.0.1:1"])
        assert result.exit_code == 1
        assert "topics[crm.public.accounts].partitions: must be at least 1 (got 0)" in result.output


def test_plan_against_no_broker_prints_one_error_and_no_librdkafka_log(docs, tmp_path):
    # librdkafka writes its log to the process's stderr itself, past click: only a real process shows it
    result = subprocess.run(
        [sys.executable, "-m", "psmesh", "topology", "plan", "--file", str(docs.repo / "topology.yaml"),
         "--bootstrap-servers", "127.0.0.1:1", "--timeout", "2"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "|FAIL|" not in result.stderr and "rdkafka" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: 127.0.0.1:1: cannot read the cluster's topics: Failed to get metadata: Local: Broker transport failure"
    ]


def test_a_registry_url_without_a_scheme_is_a_usage_error(docs):
    result = CliRunner().invoke(
        topology_cli, ["plan", "--file", str(docs.repo / "topology.yaml"), "--registry-url", "localhost:8081"]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--registry-url': must be an http:// or https:// URL (got 'localhost:8081')" in result.output


def test_graph_to_a_missing_directory_is_an_error_naming_the_file(docs, tmp_path):
    target = tmp_path / "missing" / "x.svg"
    result = CliRunner().invoke(topology_cli, ["graph", "--file", str(docs.repo / "topology.yaml"), "-o", str(target)])
    assert result.exit_code == 1
    assert f"Could not open file '{target}': No such file or directory" in result.output
    assert isinstance(result.exception, SystemExit)


def test_graph_takes_the_format_from_the_output_suffix_and_refuses_a_contradiction(docs, tmp_path):
    topology_file = str(docs.repo / "topology.yaml")
    wrong = CliRunner().invoke(topology_cli, ["graph", "--file", topology_file, "--format", "png", "-o", str(tmp_path / "out.svg")])
    assert wrong.exit_code == 2
    assert "out.svg has the suffix .svg, which is not png" in wrong.output
    assert not (tmp_path / "out.svg").exists()
    mermaid = CliRunner().invoke(topology_cli, ["graph", "--file", topology_file, "-o", str(tmp_path / "out.mmd")])
    assert mermaid.exit_code == 0, mermaid.output
    assert (tmp_path / "out.mmd").read_text().startswith("flowchart LR")


def test_plan_apply_and_graph_print_the_topology_warnings_on_stderr(doc, docs, tmp_path):
    doc["topics"][0]["consumers"].append("reporting_sink")  # listed on a topic it does not read: a warning
    path = tmp_path / "topology.yaml"
    path.write_text(docs.dump(doc))
    warning = "warning: topics[crm.public.accounts].consumers[1]:"
    graph = CliRunner().invoke(topology_cli, ["graph", "--file", str(path), "--format", "mermaid"])
    assert graph.exit_code == 0
    assert warning in graph.stderr and warning not in graph.stdout
    for command in ("plan", "apply"):
        result = CliRunner().invoke(
            topology_cli, [command, "--file", str(path), "--bootstrap-servers", "127.0.0.1:1", "--timeout", "1"]
        )
        assert warning in result.stderr, (command, result.output)
