"""``psmesh status``'s options are checked before it reads anything: a usage error, not a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from psmesh.cli import main


@pytest.mark.parametrize("args, says", [
    (["--watch", "-1"], "Invalid value for '--watch': -1.0 is not in the range"),
    (["--watch", "0"], "Invalid value for '--watch': 0.0 is not in the range"),
    (["--max-slot-lag-mb", "nan"], "Invalid value for '--max-slot-lag-mb': must be a number, not nan"),
    (["--max-slot-lag-mb", "-3"], "Invalid value for '--max-slot-lag-mb': -3.0 is not in the range"),
    (["--max-consumer-lag", "-5"], "Invalid value for '--max-consumer-lag': -5 is not in the range x>=0"),
])
def test_an_option_out_of_range_is_a_usage_error(args, says):
    result = CliRunner().invoke(main, ["status", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output
