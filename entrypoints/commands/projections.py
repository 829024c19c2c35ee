"""`billrun projections ...`: read models' versions, lag, and rebuilds."""

from __future__ import annotations

import typer

from entrypoints import output
from entrypoints.common import JsonFlag, progress_bar, refusals, runtime
from projections.rebuild import rebuild

projections_app = typer.Typer(
    help="See and rebuild the read models (after a rules change).", no_args_is_help=True
)


@projections_app.command("status")
@refusals
def projections_status(json_out: JsonFlag = False) -> None:
    """Each read model's code version, active version, position, the log head and lag."""
    with runtime() as rt:
        states = rt.read_side.states()
    if json_out:
        output.print_json([state.as_json() for state in states])
        return
    table = output.compact_table("Read models")
    for column in ("name", "code", "active", "state", "position", "head", "lag"):
        table.add_column(
            column,
            justify="right" if column in ("position", "head", "lag") else "left",
            no_wrap=column != "state",
        )
    for s in states:
        style = "yellow" if s.needs_rebuild or s.building else ""
        table.add_row(
            s.name, f"v{s.code_version}", s.active, s.state, str(s.position), str(s.head),
            str(s.lag), style=style,
        )  # fmt: skip
    output.print_table(table, droppable=("code", "head"))


@projections_app.command("rebuild")
@refusals
def projections_rebuild(name: str, json_out: JsonFlag = False) -> None:
    """Build the next version of a read model beside the current one, then switch.

    Reads keep answering from the current version throughout; the switch is
    atomic; the old tables are dropped after. Interrupted, the current version
    keeps serving, and running the command again resumes.
    """
    with runtime() as rt:
        if json_out:
            outcome = rebuild(rt.read_side, name)
        else:
            with progress_bar(f"rebuilding {name}") as update:
                outcome = rebuild(rt.read_side, name, on_progress=update)
    if json_out:
        output.print_json(outcome.__dict__)
        return
    rate = outcome.positions / outcome.seconds if outcome.seconds else 0
    output.console.print(
        f"{name}: {outcome.active} now serves reads (replaced {outcome.replaced}); "
        f"log positions {outcome.positions:,} read in {outcome.seconds:.1f} s "
        f"({rate:,.0f} positions/s)"
        + (", resumed an interrupted rebuild" if outcome.resumed else "")
    )
