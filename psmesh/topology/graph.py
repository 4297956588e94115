"""Lineage of the mesh, drawn from the topology.

sources → change topics → processors → derived and view topics → sinks →
target databases, plus dashed dead-letter edges. ``lineage`` builds the graph
once; ``to_mermaid`` and ``render`` (Graphviz ``dot``, SVG or PNG) draw the
same nodes and edges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from psmesh.topology.exceptions import RendererMissingError
from psmesh.topology.model import Topology


class NodeKind(StrEnum):
    SOURCE = "source"
    CHANGE_TOPIC = "change_topic"
    TOPIC = "topic"
    DEAD_LETTER = "dead_letter"
    PROCESSOR = "processor"
    SINK = "sink"
    TARGET = "target"


class EdgeKind(StrEnum):
    DATA = "data"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: NodeKind


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: EdgeKind = EdgeKind.DATA


@dataclass
class Lineage:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def connect(self, source: str, target: str, kind: EdgeKind = EdgeKind.DATA) -> None:
        edge = Edge(source, target, kind)
        if edge not in self.edges:
            self.edges.append(edge)


def node_id(kind: NodeKind, name: str) -> str:
    """A Mermaid/Graphviz-safe id, unique per kind (topic names that differ only in '.'/'_' are refused by validation)."""
    prefix = {
        NodeKind.SOURCE: "src",
        NodeKind.CHANGE_TOPIC: "topic",
        NodeKind.TOPIC: "topic",
        NodeKind.DEAD_LETTER: "topic",
        NodeKind.PROCESSOR: "proc",
        NodeKind.SINK: "sink",
        NodeKind.TARGET: "db",
    }[kind]
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


def lineage(topology: Topology) -> Lineage:
    graph = Lineage()
    change_topics = {t for s in topology.sources for t in s.change_topics}
    dead_letters = {x.dead_letter for x in (*topology.sources, *topology.processors, *topology.sinks) if x.dead_letter}
    for source in topology.sources:
        graph.add(Node(node_id(NodeKind.SOURCE, source.name), f"{source.database} (PostgreSQL)", NodeKind.SOURCE))
    for topic in topology.topics:
        kind = (
            NodeKind.CHANGE_TOPIC
            if topic.name in change_topics
            else NodeKind.DEAD_LETTER if topic.name in dead_letters else NodeKind.TOPIC
        )
        graph.add(Node(node_id(kind, topic.name), topic.name, kind))
    for source in topology.sources:
        for topic in source.change_topics:
            graph.connect(node_id(NodeKind.SOURCE, source.name), node_id(NodeKind.TOPIC, topic))
        if source.dead_letter:
            graph.connect(node_id(NodeKind.SOURCE, source.name), node_id(NodeKind.TOPIC, source.dead_letter),
                          EdgeKind.DEAD_LETTER)
    for processor in topology.processors:
        pid = graph.add(Node(node_id(NodeKind.PROCESSOR, processor.name), processor.name, NodeKind.PROCESSOR))
        for topic in processor.inputs:
            graph.connect(node_id(NodeKind.TOPIC, topic), pid)
        for topic in processor.outputs:
            graph.connect(pid, node_id(NodeKind.TOPIC, topic))
        if processor.dead_letter:
            graph.connect(pid, node_id(NodeKind.TOPIC, processor.dead_letter), EdgeKind.DEAD_LETTER)
    # one node per target database, listing every table any sink writes there
    target_tables: dict[str, list[str]] = {}
    for sink in topology.sinks:
        tables = target_tables.setdefault(sink.target.database, [])
        tables += [t for t in sink.target.tables if t not in tables]
    for database, tables in target_tables.items():
        graph.add(Node(node_id(NodeKind.TARGET, database), f"{database}\n{', '.join(tables)}", NodeKind.TARGET))
    for sink in topology.sinks:
        sid = graph.add(Node(node_id(NodeKind.SINK, sink.name), sink.name, NodeKind.SINK))
        for topic in sink.inputs:
            graph.connect(node_id(NodeKind.TOPIC, topic), sid)
        graph.connect(sid, node_id(NodeKind.TARGET, sink.target.database))
        if sink.dead_letter:
            graph.connect(sid, node_id(NodeKind.TOPIC, sink.dead_letter), EdgeKind.DEAD_LETTER)
    return graph


_MERMAID_SHAPE = {
    NodeKind.SOURCE: ('[("', '")]'),
    NodeKind.CHANGE_TOPIC: ('(["', '"])'),
    NodeKind.TOPIC: ('(["', '"])'),
    NodeKind.DEAD_LETTER: ('(["', '"])'),
    NodeKind.PROCESSOR: ('{{"', '"}}'),
    NodeKind.SINK: ('[["', '"]]'),
    NodeKind.TARGET: ('[("', '")]'),
}
_MERMAID_STYLE = {
    NodeKind.SOURCE: "fill:#dbeafe,stroke:#1d4ed8",
    NodeKind.CHANGE_TOPIC: "fill:#f1f5f9,stroke:#475569",
    NodeKind.TOPIC: "fill:#fef3c7,stroke:#b45309",
    NodeKind.DEAD_LETTER: "fill:#fee2e2,stroke:#b91c1c",
    NodeKind.PROCESSOR: "fill:#dcfce7,stroke:#15803d",
    NodeKind.SINK: "fill:#ede9fe,stroke:#6d28d9",
    NodeKind.TARGET: "fill:#dbeafe,stroke:#1d4ed8",
}


def to_mermaid(graph: Lineage) -> str:
    """Mermaid ``flowchart LR`` text: solid arrows carry data, dashed ones dead letters."""
    lines = ["flowchart LR"]
    for node in graph.nodes.values():
        start, end = _MERMAID_SHAPE[node.kind]
        label = node.label.replace('"', "#quot;").replace("\n", "<br/>")
        lines.append(f"    {node.id}{start}{label}{end}")
    for edge in graph.edges:
        arrow = "-.->" if edge.kind is EdgeKind.DEAD_LETTER else "-->"
        lines.append(f"    {edge.source} {arrow} {edge.target}")
    for kind in NodeKind:
        members = [n.id for n in graph.nodes.values() if n.kind is kind]
        if members:
            lines.append(f"    classDef {kind.value} {_MERMAID_STYLE[kind]}")
            lines.append(f"    class {','.join(members)} {kind.value}")
    return "\n".join(lines) + "\n"


_DOT_SHAPE = {
    NodeKind.SOURCE: {"shape": "cylinder", "fillcolor": "#dbeafe"},
    NodeKind.CHANGE_TOPIC: {"shape": "box", "style": "rounded,filled", "fillcolor": "#f1f5f9"},
    NodeKind.TOPIC: {"shape": "box", "style": "rounded,filled", "fillcolor": "#fef3c7"},
    NodeKind.DEAD_LETTER: {"shape": "box", "style": "rounded,filled", "fillcolor": "#fee2e2"},
    NodeKind.PROCESSOR: {"shape": "hexagon", "fillcolor": "#dcfce7"},
    NodeKind.SINK: {"shape": "component", "fillcolor": "#ede9fe"},
    NodeKind.TARGET: {"shape": "cylinder", "fillcolor": "#dbeafe"},
}


def to_dot(graph: Lineage):
    """The lineage as a ``graphviz.Digraph`` (rendering it needs the ``dot`` executable)."""
    try:
        import graphviz
    except ImportError as exc:  # a declared dependency, but say so plainly if it is absent
        raise RendererMissingError("the 'graphviz' Python package is not installed (pip install graphviz)") from exc
    dot = graphviz.Digraph("psmesh", graph_attr={"rankdir": "LR", "fontname": "Helvetica", "nodesep": "0.25"})
    dot.attr("node", fontname="Helvetica", fontsize="10", style="filled")
    dot.attr("edge", color="#64748b", arrowsize="0.6")
    for node in graph.nodes.values():
        dot.node(node.id, node.label, **_DOT_SHAPE[node.kind])
    for edge in graph.edges:
        # dead-letter edges do not rank nodes, so the data flow keeps its left-to-right order
        attrs = {"style": "dashed", "color": "#b91c1c", "constraint": "false"} if edge.kind is EdgeKind.DEAD_LETTER else {}
        dot.edge(edge.source, edge.target, **attrs)
    return dot


def render(graph: Lineage, fmt: str) -> bytes:
    """SVG or PNG bytes; raises RendererMissingError when Graphviz's ``dot`` is not installed."""
    dot = to_dot(graph)
    import graphviz  # importable: to_dot checked

    try:
        return dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise RendererMissingError(
            "Graphviz's 'dot' executable was not found on PATH; install Graphviz (Debian: apt-get install -y graphviz)"
        ) from exc
