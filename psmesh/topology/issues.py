"""Located findings about a topology file: what is wrong, where, and on which line.

A location reads like the YAML it points at: ``topics[crm.public.accounts].partitions``
or ``processors[capacity].inputs[2]``. Items of the top-level lists are named
by their ``name`` when they have one, by their index otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: A path into the parsed YAML document: mapping keys and sequence indexes.
Path = tuple[str | int, ...]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Issue:
    """One finding. Errors make the topology invalid; warnings do not."""

    severity: Severity
    location: str
    message: str
    line: int | None = None
    file: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = self.file or "topology"
        if self.line is not None:
            where = f"{where}:{self.line}"
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        location = f"{self.location}: " if self.location else ""
        return f"{where}: {prefix}{location}{self.message}"


class Locator:
    """Turns document paths into readable locations and YAML line numbers."""

    def __init__(self, data: Any, lines: Mapping[Path, int], file: str | None):
        self._data = data
        self._lines = lines
        self.file = file

    def issue(self, path: Path, message: str, severity: Severity = Severity.ERROR) -> Issue:
        return Issue(severity, self.location(path), message, self.line(path), self.file)

    def warning(self, path: Path, message: str) -> Issue:
        return self.issue(path, message, Severity.WARNING)

    def line(self, path: Path) -> int | None:
        """Line of the deepest part of ``path`` present in the file (a missing field points at its parent)."""
        for end in range(len(path), -1, -1):
            line = self._lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def location(self, path: Path) -> str:
        out = ""
        node = self._data
        for depth, part in enumerate(path):
            if isinstance(part, int):
                name = None
                if depth == 1 and isinstance(node, list) and 0 <= part < len(node):
                    item = node[part]
                    if isinstance(item, Mapping) and isinstance(item.get("name"), str) and item["name"]:
                        name = item["name"]
                out += f"[{name if name is not None else part}]"
            else:
                out += f".{part}" if out else str(part)
            node = _child(node, part)
        return out


def _child(node: Any, part: str | int) -> Any:
    if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
        return node[part]
    if isinstance(node, Mapping):
        return node.get(part)
    return None
