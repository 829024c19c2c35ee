"""`billrun run process|cancel`: move a run along its workflow, or undo it."""

from __future__ import annotations

from typing import Annotated

import typer

from application.runs.cancel import cancel_run
from application.runs.workflow import process_run
from domain.runs.settings import CancelMode
from entrypoints import output
from entrypoints.common import JsonFlag, refusals, runtime
from entrypoints.refusals import UsageError
from entrypoints.representations_runs import cancel_json, process_json


@refusals
def run_cancel(
    run_id: str,
    reopen: Annotated[
        bool, typer.Option("--reopen", help="Unbill what the run billed: a later run bills it.")
    ] = False,
    discard: Annotated[
        bool, typer.Option("--discard", help="Write off what the run billed: never billed again.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, recorded on the run and its invoices.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Cancel a run: its draft and quarantined invoices are cancelled, and with
    --reopen its package periods (next bill dates rewind), usage, charges and
    contract penalties are unbilled again so a later run bills them once; with
    --discard they are written off.

    Refused, writing nothing, while the run runs, when one of its invoices is
    approved (final: correct it with a credit), or when a later run has already
    billed an account after it (cancel that one first).
    """
    if reopen == discard:
        raise UsageError("choose one: --reopen or --discard")
    if not reason.strip():
        raise UsageError("--reason is required: say why the run is cancelled")
    mode = CancelMode.REOPEN if reopen else CancelMode.DISCARD
    with runtime() as rt:
        outcome = cancel_run(rt.billing, run_id, mode, reason)
    if json_out:
        output.print_json(cancel_json(run_id, mode, outcome))
        return
    reopened = (
        f"; {outcome.accounts_reopened} accounts reopened for a later run"
        if mode is CancelMode.REOPEN
        else "; what it billed is written off"
    )
    output.console.print(
        f"run {run_id} cancelled: {outcome.invoices_cancelled} invoices cancelled "
        f"({outcome.invoices_left} already final left as they were){reopened}"
    )


@refusals
def run_process(run_id: str, json_out: JsonFlag = False) -> None:
    """Move a run to its next workflow state: scheduled or running -> drafts ready
    (execute it), drafts ready -> validated (approve its draft invoices; refused while
    any is quarantined), validated -> completed (for good: no more cancelling).
    """
    with runtime() as rt:
        before = rt.billing.get_run(run_id).workflow_state
        after = process_run(rt.billing, run_id, rt.settings.batch_size)
    if json_out:
        output.print_json(process_json(run_id, before, after))
        return
    output.console.print(f"run {run_id}: {before.value} -> {after.value}")
