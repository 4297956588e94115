"""``psmesh firm run``: the options the issue asks for."""

from click.testing import CliRunner

from psmesh.firm.cli import firm


def test_firm_run_offers_seed_size_weeks_pace_open_loop_and_fresh():
    result = CliRunner().invoke(firm, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--seed", "--size", "--weeks", "--pace", "--open-loop", "--fresh"):
        assert option in result.output


def test_firm_run_refuses_an_unknown_size():
    result = CliRunner().invoke(firm, ["run", "--size", "huge"])
    assert result.exit_code != 0 and "huge" in result.output
