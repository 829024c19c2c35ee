"""`billrun audit ...`: the tamper-evident seal over the event log."""

from __future__ import annotations

from typing import Annotated

import typer

from entrypoints import output
from entrypoints.common import JsonFlag, refusals, runtime
from projections.audit_seal import seal_up_to_head, verify

audit_app = typer.Typer(
    help="Verify that nothing in the event log was altered, deleted or inserted.",
    no_args_is_help=True,
)


@audit_app.command("verify")
@refusals
def audit_verify(
    start: Annotated[int, typer.Option("--from", min=1, help="Start at this notification id.")] = 1,
    expect_head: Annotated[
        str | None,
        typer.Option(help="Fail unless the recomputed head equals this anchored hash."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Recompute the hash chain from the stored events and compare it with the seal.

    New events are sealed first. Exit code 0 when the log matches its seal; 1 with
    the first notification that does not (altered, deleted or inserted).
    """
    with runtime() as rt:
        seal = rt.read_side.audit_seal()
        seal_up_to_head(rt.billing, seal)
        result = verify(rt.billing, seal, start)
    anchored_ok = expect_head is None or result.head.link == expect_head
    if json_out:
        output.print_json({**result.as_json(), "expected_head_matches": anchored_ok})
    elif result.ok and anchored_ok:
        output.console.print(
            f"OK: {result.checked} events checked, {result.head.count} sealed; "
            f"head {result.head.link} at notification {result.head.notification_id}",
            soft_wrap=True,
        )
    elif not result.ok:
        output.errors.print(f"[red]TAMPERED:[/red] {result.finding}", soft_wrap=True)
    else:
        output.errors.print(
            f"[red]MISMATCH:[/red] head {result.head.link} is not the anchored {expect_head}: "
            "the seal itself was rewritten",
            soft_wrap=True,
        )
    if not (result.ok and anchored_ok):
        raise typer.Exit(1)


@audit_app.command("head")
@refusals
def audit_head(json_out: JsonFlag = False) -> None:
    """Seal new events and print the chain's head, to anchor it somewhere else."""
    with runtime() as rt:
        seal = rt.read_side.audit_seal()
        seal_up_to_head(rt.billing, seal)
        head = seal.head()
    if json_out:
        output.print_json(head.__dict__)
        return
    output.console.print(
        f"{head.link} (notification {head.notification_id}, {head.count} events)", soft_wrap=True
    )
