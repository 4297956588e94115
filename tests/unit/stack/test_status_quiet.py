"""``psmesh status`` with every server down: the report, and no librdkafka log around it."""

from __future__ import annotations

import os
import subprocess
import sys


def test_status_with_no_broker_prints_the_report_without_librdkafka_log(tmp_path):
    nowhere = {  # port 1 on loopback: nothing listens, every connection is refused at once
        "PSMESH_KAFKA_BOOTSTRAP": "127.0.0.1:1", "PSMESH_PG_PORT": "1", "PSMESH_REGISTRY_URL": "http://127.0.0.1:1",
        "PSMESH_PROCESSORS_PORT": "1", "PSMESH_PAGE_PORT": "1", "PSMESH_CDC_METRICS_PORT_BASE": "1",
        "PSMESH_ERP_SINK_METRICS_PORT": "1", "PSMESH_REPORTING_SINK_METRICS_PORT": "1", "PSMESH_HOME": str(tmp_path),
    }
    result = subprocess.run([sys.executable, "-m", "psmesh", "status"], capture_output=True, text=True,
                            env={**os.environ, **nowhere}, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "unreachable at 127.0.0.1:1" in result.stdout
    assert "rdkafka" not in result.stderr and "|FAIL|" not in result.stderr, result.stderr[:500]
