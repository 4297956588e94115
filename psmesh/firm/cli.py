"""``psmesh firm``: run the demo firm against the source databases."""

from __future__ import annotations

import click

from psmesh.firm.params import PRESETS


@click.group()
def firm() -> None:
    """The demo firm: a deterministic consulting firm writing into crm, psa, timeexp and erp."""


@firm.command("run")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same rows.")
@click.option("--size", type=click.Choice(sorted(PRESETS)), default="small", show_default=True)
@click.option("--weeks", type=int, default=None, help="Simulated weeks (default: the preset's).")
@click.option("--pace", type=float, default=None, help="Max row changes per second (default: as fast as possible).")
@click.option("--open-loop", is_flag=True, help="Book time to won deals without waiting for the mesh's ERP projects.")
@click.option("--fresh", is_flag=True, help="Truncate the firm's source tables first.")
def run_command(seed: int, size: str, weeks: int | None, pace: float | None, open_loop: bool, fresh: bool) -> None:
    """Simulate the firm week by week and write its rows."""
    from psmesh.config import load_settings
    from psmesh.firm.exceptions import FirmError
    from psmesh.firm.simulator import WeekProgress, run

    def show(p: WeekProgress) -> None:
        click.echo(f"week {p.week_number}/{p.weeks} ({p.iso_year}-W{p.iso_week:02d}): "
                   f"{p.changes} row changes, {p.total} in all, {p.rate:.0f}/s")

    params = PRESETS[size]
    try:
        written = run(load_settings(), params, seed, weeks=weeks, pace=pace, open_loop=open_loop, progress=show, fresh=fresh)
    except FirmError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("row changes written:")
    for table, count in written.items():
        click.echo(f"  {table:28} {count}")
    click.echo(f"  {'total':28} {sum(written.values())}")


@firm.command("measure")
@click.option("--warmup", type=int, default=2, show_default=True, help="Weeks left out at the start of the run.")
def measure_command(warmup: int) -> None:
    """Measure the firm in the source databases: utilization, margin, realization, pipeline, overruns, late time."""
    from psmesh.config import load_settings
    from psmesh.firm.measure import NothingToMeasure, measure

    try:
        m = measure(load_settings(), warmup_weeks=warmup)
    except NothingToMeasure as exc:
        raise click.ClickException(str(exc)) from exc

    def pct(value) -> str:
        return "n/a" if value is None else f"{value * 100:.1f}%"

    click.echo(f"weeks {m.first_week} to {m.last_day} ({m.weeks} after a {warmup}-week warm-up, the last week left out)")
    click.echo(f"  billable utilization  {pct(m.utilization):>7}   {m.billable_hours:,} of {m.capacity_hours:,} capacity hours")
    click.echo(f"  project margin        {pct(m.margin):>7}   delivered {m.delivered:,.2f}, cost {m.cost:,.2f}")
    click.echo(f"  realization           {pct(m.realization):>7}   billed rate / rate card on approved billable time")
    coverage = "n/a" if m.pipeline_coverage is None else f"{m.pipeline_coverage:.2f}x"
    click.echo(f"  pipeline coverage     {coverage:>7}   open {m.open_pipeline:,.2f} / a quarter's bookings {m.quarter_bookings:,.2f}")
    click.echo(f"  projects overrunning  {pct(m.overrun_share):>7}   {m.projects_overrun} of {m.projects_ended} that ended in the window")
    click.echo(f"  time approved late    {pct(m.late_time_share):>7}   of approved hours, after their billing period closed")
