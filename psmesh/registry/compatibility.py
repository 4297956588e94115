"""Compatibility levels, decided by Apache Avro's reference checker.

The rules themselves are not written here: every reader/writer pair goes
through ``avro.compatibility.ReaderWriterCompatibilityChecker`` (the Python
port of Java's ``SchemaCompatibility``, which Confluent's server uses), and
this module only decides *which* pairs a level asks for:

- BACKWARD: the new schema, as reader, can read data written with the latest
  registered version; FORWARD: the latest version, as reader, can read data
  written with the new schema; FULL: both.
- The ``_TRANSITIVE`` variants check against every live (not soft-deleted)
  version instead of the latest only. NONE checks nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Sequence

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from psmesh.registry.exceptions import InvalidCompatibilityLevelError


class CompatibilityLevel(str, enum.Enum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @classmethod
    def parse(cls, value: object) -> CompatibilityLevel:
        """The level named by ``value`` (any case); 42203 for anything else."""
        if isinstance(value, str):
            try:
                return cls(value.strip().upper())
            except ValueError:
                pass
        raise InvalidCompatibilityLevelError(value)

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def checks_backward(self) -> bool:
        """Whether the new schema must read data written with older versions."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def checks_forward(self) -> bool:
        """Whether older versions must read data written with the new schema."""
        return self.value.startswith(("FORWARD", "FULL"))


#: Confluent's default when neither the subject nor the registry sets a level.
DEFAULT_LEVEL = CompatibilityLevel.BACKWARD


class Direction(str, enum.Enum):
    """Which of the two schemas plays the reader."""

    #: The new schema reads data written with the existing version.
    BACKWARD = "BACKWARD"
    #: The existing version reads data written with the new schema.
    FORWARD = "FORWARD"


@dataclass(frozen=True)
class Incompatibility:
    """One refused reader/writer pair, with the checker's own findings.

    ``kinds`` are Avro's ``SchemaIncompatibilityType`` names, ``messages``
    and ``locations`` the checker's messages and JSON-pointer-like paths into
    the reader schema (the checker merges them as sets, so they are sorted
    here rather than paired one to one).
    """

    version: int
    direction: Direction
    kinds: tuple[str, ...]
    messages: tuple[str, ...]
    locations: tuple[str, ...]

    def describe(self) -> str:
        if self.direction is Direction.BACKWARD:
            who = f"the new schema cannot read data written with version {self.version}"
        else:
            who = f"version {self.version} cannot read data written with the new schema"
        kinds = ", ".join(k.upper() for k in self.kinds)
        return (
            f"{who}: {kinds} at {', '.join(self.locations)}"
            f" ({'; '.join(self.messages)})"
        )


def check_pair(reader: avro.schema.Schema, writer: avro.schema.Schema) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None:
    """Ask Avro's checker whether ``reader`` can read what ``writer`` wrote.

    Returns ``None`` when compatible, else (kinds, messages, locations).
    """
    # A fresh checker per pair: it memoizes by object identity (id()), which
    # must not outlive the schemas it was computed for.
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    kinds = tuple(dict.fromkeys(k.value for k in result.incompatibilities))
    return kinds, tuple(sorted(result.messages)), tuple(sorted(result.locations))


def check_compatibility(
    candidate: avro.schema.Schema,
    existing: Sequence[tuple[int, avro.schema.Schema]],
    level: CompatibilityLevel,
) -> list[Incompatibility]:
    """Every incompatibility of ``candidate`` against ``existing`` under ``level``.

    ``existing`` holds (version, schema) of the live versions to compare
    with, oldest first; a non-transitive level only looks at the last one.
    An empty list means the candidate may be registered.
    """
    if level is CompatibilityLevel.NONE or not existing:
        return []
    targets = existing if level.transitive else existing[-1:]
    found: list[Incompatibility] = []
    for version, old in reversed(targets):
        pairs = []
        if level.checks_backward:
            pairs.append((Direction.BACKWARD, candidate, old))
        if level.checks_forward:
            pairs.append((Direction.FORWARD, old, candidate))
        for direction, reader, writer in pairs:
            problem = check_pair(reader, writer)
            if problem is not None:
                found.append(Incompatibility(version, direction, *problem))
    return found


def describe_incompatibilities(
    subject: str, level: CompatibilityLevel, found: Sequence[Incompatibility]
) -> str:
    """The 409 message: which subject, which rule, and what the checker found."""
    details = "; ".join(i.describe() for i in found)
    return (
        f"Schema being registered is incompatible with an earlier schema for subject "
        f"\"{subject}\" under compatibility level {level.value}: {details}"
    )
