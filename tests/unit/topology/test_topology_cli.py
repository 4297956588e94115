"""CLI behaviour that needs no server: bad options and an unreachable cluster."""

from __future__ import annotations

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
