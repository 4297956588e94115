"""A small valid topology to break one rule at a time, and helpers to check the result."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from psmesh.topology.issues import Issue
from psmesh.topology.model import Topology, check_text

REPO = Path(__file__).resolve().parents[3]

_MINIMAL = {
    "version": 1,
    "defaults": {"partitions": 3, "replication_factor": 3, "cleanup_policy": "delete"},
    "clusters": {"local": {"replication_factor": 1}},
    "domains": [
        {"name": "crm", "description": "Pipeline.", "owner": {"team": "Sales Ops", "email": "sales-ops@firm.example"}},
        {"name": "analytics", "description": "Views.", "owner": {"team": "Data", "email": "data@firm.example"}},
    ],
    "sources": [
        {
            "name": "crm",
            "domain": "crm",
            "database": "crm",
            "slot": "psmesh_crm",
            "publication": "psmesh_crm",
            "tables": ["accounts", "opportunities"],
        }
    ],
    "topics": [
        {
            "name": "crm.public.accounts",
            "owner": "crm",
            "cleanup_policy": "compact",
            "key": ["account_id"],
            "consumers": ["pipeline"],
            "description": "Change events of crm.accounts.",
        },
        {
            "name": "crm.public.opportunities",
            "owner": "crm",
            "cleanup_policy": "compact",
            "key": ["opportunity_id"],
            "consumers": ["pipeline"],
            "description": "Change events of crm.opportunities.",
        },
        {
            "name": "views.pipeline",
            "owner": "analytics",
            "partitions": 6,
            "cleanup_policy": "compact",
            "key": ["service_line", "close_month"],
            "consumers": ["reporting_sink"],
            "description": "Pipeline view.",
        },
        {
            "name": "dlq.processors",
            "owner": "analytics",
            "partitions": 1,
            "retention_ms": -1,
            "key": ["topic", "partition", "offset"],
            "description": "Dead letters.",
        },
    ],
    "processors": [
        {
            "name": "pipeline",
            "domain": "analytics",
            "inputs": ["crm.public.accounts", "crm.public.opportunities"],
            "outputs": ["views.pipeline"],
            "tables": ["pipeline"],
            "dead_letter": "dlq.processors",
        }
    ],
    "sinks": [
        {
            "name": "reporting_sink",
            "domain": "analytics",
            "inputs": ["views.pipeline"],
            "target": {"database": "reporting", "tables": ["pipeline"]},
            "dead_letter": "dlq.processors",
        }
    ],
}


@pytest.fixture
def doc() -> dict:
    """A fresh copy of a small valid topology document, to break."""
    return copy.deepcopy(_MINIMAL)


class TopologyDocs:
    """Helpers for the broken-file tests (a fixture, so no test imports this conftest)."""

    repo = REPO

    @staticmethod
    def dump(document: dict) -> str:
        return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)

    def check(self, document: dict, base_dir: Path | None = None) -> tuple[Topology | None, list[Issue], str]:
        text = self.dump(document)
        topology, issues = check_text(text, file="topology.yaml", base_dir=base_dir)
        return topology, issues, text

    @staticmethod
    def line_of(text: str, needle: str, after: str | None = None) -> int:
        """1-based line of the first line containing ``needle`` (after the first one containing ``after``)."""
        lines = text.splitlines()
        start = 0 if after is None else next(i for i, line in enumerate(lines) if after in line)
        return next(i for i in range(start, len(lines)) if needle in lines[i]) + 1

    @staticmethod
    def only_error(issues: list[Issue]) -> Issue:
        errors = [i for i in issues if i.is_error]
        assert len(errors) == 1, "\n".join(map(str, issues))
        return errors[0]


@pytest.fixture
def docs() -> TopologyDocs:
    return TopologyDocs()
