"""``psmesh processors republish`` refuses what it cannot ask for before it reaches the broker: one line and exit
code 2, never a traceback (the requests themselves: tests/integration/test_republish.py)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from psmesh.cli import main


@pytest.mark.parametrize("args, message", [
    (["--project", "PRJ-1|x"], "Invalid value for '--project': 'PRJ-1|x' is not a project code"),
    (["--project", ""], "Invalid value for '--project': '' is not a project code"),
    (["--resource", "seven"], "Invalid value for '--resource': 'seven' is not a valid integer"),
    (["--stage", "project", "--project", "PRJ-1"], "--stage re-publishes whole stages, --project and --resource"),
    (["--stage", "rollup", "--resource", "7"], "give one or the other"),
])
def test_a_request_that_cannot_be_asked_is_a_usage_error(args, message):
    # port 1: were the arguments taken, the command would fail to reach a broker there with exit code 1
    result = CliRunner().invoke(main, ["processors", "republish", *args], env={"PSMESH_KAFKA_PORT": "1"})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
