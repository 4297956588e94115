"""The mesh's topology: ``topology.yaml``, its rules, and plan/apply/graph against a cluster.

``load_topology`` is the one way in: it returns a fully validated ``Topology``
or raises ``TopologyError`` carrying every issue found, each located by field
and YAML line.
"""

from psmesh.topology.exceptions import TopologyError
from psmesh.topology.issues import Issue, Severity
from psmesh.topology.model import Topology, check_topology, load_topology

__all__ = ["Issue", "Severity", "Topology", "TopologyError", "check_topology", "load_topology"]
