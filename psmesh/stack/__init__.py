"""The local stack: real Kafka, PostgreSQL and schema registry as local processes.

No Docker engine runs on the build machines, so the project starts the real
servers itself: Kafka's jars come from Maven Central and run on the machine's
Java, PostgreSQL comes from Debian's packages, the registry is a psmesh
service. Every part is idempotent to start and leaves no process behind when
stopped.
"""

from psmesh.stack.exceptions import StackError
from psmesh.stack.local import ComponentStatus, LocalStack

__all__ = ["ComponentStatus", "LocalStack", "StackError"]
