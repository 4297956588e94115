"""The lineage graph of the repository's topology, as Mermaid text and as a Graphviz picture."""

from __future__ import annotations

import os
import shutil

import pytest
from click.testing import CliRunner

from psmesh.topology import load_topology
from psmesh.topology.cli import topology as topology_cli
from psmesh.topology.graph import EdgeKind, NodeKind, lineage, to_mermaid


@pytest.fixture
def graph(docs):
    return lineage(load_topology(docs.repo / "topology.yaml"))


def test_lineage_runs_from_sources_through_processors_and_sinks_to_targets(graph):
    edges = {(e.source, e.target, e.kind) for e in graph.edges}
    chain = [
        ("src_crm", "topic_crm_public_opportunities"),
        ("topic_crm_public_opportunities", "proc_project_lifecycle"),
        ("proc_project_lifecycle", "topic_derived_project_requests"),
        ("topic_derived_project_requests", "sink_erp_sink"),
        ("sink_erp_sink", "db_erp"),
        ("src_timeexp", "topic_timeexp_public_time_entries"),
        ("topic_timeexp_public_time_entries", "proc_project_financials"),
        ("proc_project_financials", "topic_views_project_financials"),
        ("topic_timeexp_public_time_entries", "proc_risk"),
        ("topic_views_project_financials", "sink_reporting_sink"),
        ("sink_reporting_sink", "db_reporting"),
    ]
    for source, target in chain:
        assert (source, target, EdgeKind.DATA) in edges
    assert ("proc_capacity", "topic_dlq_processors", EdgeKind.DEAD_LETTER) in edges
    assert ("sink_erp_sink", "topic_dlq_sinks", EdgeKind.DEAD_LETTER) in edges


def test_every_node_kind_is_present_and_every_edge_joins_known_nodes(graph):
    assert {n.kind for n in graph.nodes.values()} == set(NodeKind)
    for edge in graph.edges:
        assert edge.source in graph.nodes and edge.target in graph.nodes
    assert graph.nodes["topic_crm_public_accounts"].kind is NodeKind.CHANGE_TOPIC
    assert graph.nodes["topic_views_pipeline"].kind is NodeKind.TOPIC
    assert graph.nodes["topic_dlq_sinks"].kind is NodeKind.DEAD_LETTER


def test_mermaid_is_a_left_to_right_flowchart_with_the_expected_edges(graph):
    text = to_mermaid(graph)
    assert text.startswith("flowchart LR\n")
    for line in (
        "src_crm --> topic_crm_public_opportunities",
        "topic_crm_public_opportunities --> proc_pipeline",
        "proc_pipeline --> topic_views_pipeline",
        "topic_views_pipeline --> sink_reporting_sink",
        "sink_reporting_sink --> db_reporting",
        "proc_billing --> topic_derived_billing_triggers",
        "topic_derived_billing_triggers --> sink_erp_sink",
        "proc_risk -.-> topic_dlq_processors",
        'topic_views_pipeline(["views.pipeline"])',
        'proc_capacity{{"capacity"}}',
        'db_erp[("erp<br/>projects, billing_milestones, billing_events")]',
    ):
        assert f"    {line}\n" in text


def test_cli_graph_mermaid_goes_to_stdout(docs, monkeypatch):
    monkeypatch.chdir(docs.repo)
    result = CliRunner().invoke(topology_cli, ["graph", "--format", "mermaid"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart LR\n")
    assert "src_erp --> topic_erp_public_billing_periods" in result.output


def _need_dot() -> None:
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz 'dot' is not installed (apt-get install -y graphviz)")
        pytest.skip("Graphviz 'dot' is not installed")


def test_cli_graph_draws_an_svg(docs, tmp_path):
    _need_dot()
    out = tmp_path / "mesh.svg"
    result = CliRunner().invoke(topology_cli, ["graph", "--file", str(docs.repo / "topology.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert "<svg" in svg and "derived.billing_triggers" in svg and "reporting_sink" in svg


def test_cli_graph_draws_a_png(docs, tmp_path):
    _need_dot()
    out = tmp_path / "mesh.png"
    result = CliRunner().invoke(
        topology_cli, ["graph", "--file", str(docs.repo / "topology.yaml"), "--format", "png", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_without_dot_the_graph_command_says_so_and_still_writes_mermaid(docs, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = tmp_path / "mesh.svg"
    result = CliRunner().invoke(topology_cli, ["graph", "--file", str(docs.repo / "topology.yaml"), "-o", str(out)])
    assert result.exit_code == 1
    assert "'dot' executable was not found on PATH" in result.output
    assert "apt-get install -y graphviz" in result.output
    assert not out.exists()
    assert (tmp_path / "mesh.mmd").read_text().startswith("flowchart LR\n")
