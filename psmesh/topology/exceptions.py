"""Errors of the topology package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psmesh.topology.issues import Issue


class TopologyError(Exception):
    """``topology.yaml`` is invalid. ``issues`` holds every problem found, not only the first.

    ``issues`` contains the errors and, for context, any warnings; ``errors``
    is the subset that made the file invalid.
    """

    def __init__(self, issues: Sequence[Issue]):
        self.issues: list[Issue] = list(issues)
        errors = self.errors
        head = f"{len(errors)} error(s) in topology"
        super().__init__("\n".join([head, *(str(i) for i in errors)]))

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.is_error]


class ClusterError(Exception):
    """The Kafka cluster or the schema registry could not be read or changed."""


class RendererMissingError(Exception):
    """Graphviz (the ``dot`` executable or the Python package) is not available to draw the graph."""
