"""YAML parsing that remembers where each value came from.

PyYAML's safe loader keeps no positions in the Python objects it builds, so
the document is composed into nodes first: the node tree gives every mapping
key and sequence item its line (from the node's ``start_mark``), and the same
tree is then constructed into plain Python data. Duplicate mapping keys,
which PyYAML would silently resolve to the last one, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from psmesh.topology.issues import Path

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class ParsedYaml:
    data: Any
    #: 1-based line of each mapping key / sequence item, by document path.
    lines: dict[Path, int]
    #: (path, line, message) of problems found while parsing.
    problems: list[tuple[Path, int | None, str]] = field(default_factory=list)


def parse_yaml(text: str) -> ParsedYaml:
    """Parse one YAML document; a syntax error is returned as a problem, not raised.

    Everything the file can hold that YAML or PyYAML refuses (a syntax error,
    a control character, a recursive alias, nesting deeper than Python's
    recursion limit) is a problem with the line it was found on, never an
    exception.
    """
    try:
        # The reader checks every character when it is built: a control character fails here.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        return ParsedYaml(None, {}, [((), _error_line(exc, text), _yaml_message(exc))])
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            return ParsedYaml(None, {}, [((), _error_line(exc, text), _yaml_message(exc))])
        if node is None:
            return ParsedYaml(None, {}, [])
        cycle = _find_cycle(node, (), set(), set())
        if cycle is not None:
            return ParsedYaml(None, {}, [cycle])
        problems: list[tuple[Path, int | None, str]] = []
        _find_duplicate_keys(node, (), problems)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            return ParsedYaml(None, {}, [((), _error_line(exc, text), _yaml_message(exc))])
        lines: dict[Path, int] = {(): node.start_mark.line + 1}
        # construct_document has flattened merge keys ("<<") into the nodes,
        # so this walk sees the mappings exactly as they were constructed.
        _record_lines(node, (), lines)
        return ParsedYaml(data, lines, problems)
    except RecursionError:
        # PyYAML's composer and constructor recurse once per nesting level.
        return ParsedYaml(None, {}, [((), None, "invalid YAML: nested too deeply")])
    finally:
        loader.dispose()


def _find_cycle(node: yaml.Node, path: Path, ancestors: set[int], done: set[int]) -> tuple[Path, int, str] | None:
    """The first alias that refers to a node containing it (``u: &u [*u]``), which no topology can mean."""
    if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) or id(node) in done:
        return None
    if id(node) in ancestors:
        return path, node.start_mark.line + 1, "recursive alias: this value contains itself"
    ancestors.add(id(node))
    if isinstance(node, yaml.MappingNode):
        children = [(key.value if isinstance(key, yaml.ScalarNode) else "?", value) for key, value in node.value]
    else:
        children = list(enumerate(node.value))
    try:
        for part, child in children:
            found = _find_cycle(child, (*path, part), ancestors, done)
            if found is not None:
                return found
    finally:
        ancestors.discard(id(node))
    done.add(id(node))
    return None


def _record_lines(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            child = (*path, key_node.value)
            # the last occurrence wins, as it does in the constructed mapping
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _record_lines(item, child, lines)


def _find_duplicate_keys(
    node: yaml.Node, path: Path, problems: list[tuple[Path, int | None, str]], seen_nodes: set[int] | None = None
) -> None:
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:  # aliases make the tree a graph
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in first_line:
                    problems.append(
                        ((*path, key), line, f"duplicate key {key!r} (first on line {first_line[key]}); YAML would keep only the last")
                    )
                else:
                    first_line[key] = line
                _find_duplicate_keys(value_node, (*path, key), problems, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _find_duplicate_keys(item, (*path, index), problems, seen_nodes)


def _error_line(exc: yaml.YAMLError, text: str) -> int | None:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        return mark.line + 1 if mark is not None else None
    if isinstance(exc, yaml.reader.ReaderError):  # a position in the text, not a mark
        return text.count("\n", 0, exc.position) + 1
    return None


def _yaml_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
    elif isinstance(exc, yaml.reader.ReaderError):
        parts = [f"unacceptable character #x{exc.character:04x}: {exc.reason}" if isinstance(exc.character, int)
                 else f"unacceptable byte: {exc.reason}"]
    else:
        parts = [str(exc)]
    return "invalid YAML: " + ", ".join(parts)
