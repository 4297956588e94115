"""Where each psmesh service serves its Prometheus metrics.

The environment wins over topology.yaml, which wins over the built-in
defaults, so one file describes production while tests and a second stack on
the same machine move every port with PSMESH_* variables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psmesh.config import Settings
    from psmesh.topology.model import Topology

#: Metrics ports of the sinks when neither the environment nor the topology gives one.
SINK_DEFAULT_PORTS = {"erp": 9401, "reporting": 9402}


def capture_metrics_port(settings: Settings, topology: Topology | None, source: str) -> int | None:
    """The capture of ``source``: base + its index with PSMESH_CDC_METRICS_PORT_BASE, else the topology's."""
    names = [s.name for s in topology.sources] if topology is not None else []
    if settings.cdc_metrics_port_base is not None:
        index = names.index(source) if source in names else len(names)
        return settings.cdc_metrics_port_base + index
    if topology is None or source not in names:
        return None
    return topology.sources[names.index(source)].metrics_port


def sink_metrics_port(settings: Settings, topology: Topology | None, sink: str) -> int:
    """Sink ``erp`` or ``reporting``: PSMESH_<SINK>_SINK_METRICS_PORT, else the topology's, else the default."""
    explicit = getattr(settings, f"{sink}_sink_metrics_port")
    if explicit is not None:
        return explicit
    if topology is not None:
        for entry in topology.sinks:
            if entry.name == f"{sink}_sink" and entry.metrics_port is not None:
                return entry.metrics_port
    return SINK_DEFAULT_PORTS[sink]


def sink_dead_letter_topic(topology: Topology | None, sink: str) -> str:
    """Sink ``erp`` or ``reporting``: the topology's dead_letter for it (where psmesh status and psmesh dlq read its
    letters), else dlq.sinks."""
    if topology is not None:
        for entry in topology.sinks:
            if entry.name == f"{sink}_sink" and entry.dead_letter:
                return entry.dead_letter
    return "dlq.sinks"


def sink_database(topology: Topology | None, sink: str) -> str:
    """Sink ``erp`` or ``reporting``: the topology's target database for it, else the database of its name."""
    if topology is not None:
        for entry in topology.sinks:
            if entry.name == f"{sink}_sink":
                return entry.target.database
    return sink


def default_topology(*, strict: bool = False) -> Topology | None:
    """The topology file psmesh would use here, or None when it is missing.

    An invalid file gives None too (the local stack's ports fall back to their defaults), unless ``strict``: then
    its :class:`~psmesh.topology.exceptions.TopologyError` is raised, for a service that takes its dead-letter
    topic from the file and must not write its letters where nobody looks."""
    from psmesh.topology.cli import default_topology_path
    from psmesh.topology.exceptions import TopologyError
    from psmesh.topology.model import load_topology

    path = default_topology_path()
    if not path.exists():
        return None
    try:
        return load_topology(path)
    except (TopologyError, OSError):
        if strict:
            raise
        return None
