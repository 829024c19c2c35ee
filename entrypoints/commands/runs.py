"""`billrun run ...`: schedule, execute and inspect bill runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from typing import Annotated

import typer

from application.runs.executor import BillRunExecutor
from application.runs.scheduler import resume_failed_run, set_run_disabled
from application.runs.scheduling import schedule_run
from application.shared.errors import RunNotFound
from domain.runs.settings import RunSettings, Selection
from domain.shared.periods import Period
from entrypoints import output
from entrypoints import run_options as options
from entrypoints.common import (
    AsOfOption,
    DateOption,
    JsonFlag,
    VersionOption,
    date_parameter,
    parse_instant,
    progress_bar,
    refusals,
    runtime,
)
from entrypoints.presenters import (
    preview_comparison,
    statistics_table,
)
from entrypoints.representations_runs import (
    disabled_json,
    retry_json,
    run_json,
    run_past_json,
    run_report_json,
    run_status_now,
)
from entrypoints.run_tables import (
    drafts_table,
    key_value_table,
    lease_cell,
    parked_table,
    report_tables,
    status_rows,
    steps_table,
    totals_cells,
)
from entrypoints.runtime import Runtime
from entrypoints.worker import batch_dispatch
from infrastructure.messaging import nats_url

run_app = typer.Typer(help="Schedule, execute and inspect bill runs.", no_args_is_help=True)


@run_app.command("schedule")
@refusals
@options.takes_run_settings
def run_schedule(
    run_id: Annotated[str, typer.Argument(help="Your name for the run, e.g. 2026-01.")],
    period_start: DateOption,
    period_end: DateOption,
    posting_date: Annotated[
        date | None,
        typer.Option(
            parser=date_parameter,
            metavar="YYYY-MM-DD",
            help="Date posted on every line [default: period end]",
        ),
    ] = None,
    *,
    selection: Selection,
    settings: RunSettings,
    disabled: Annotated[
        bool,
        typer.Option(
            "--disabled",
            help="Schedule it disabled: a worker's manager leaves it alone until "
            "`billrun run enable` (time to check and preview it).",
        ),
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Schedule a bill run for a bill period (no --group and no --account: all accounts).

    Packages are billed for every bill date from the period start to its end,
    with the unbilled usage of each package billed (including usage before the
    period start; usage after the period end waits), and one-off charges dated
    on or before the period end. Contract penalties due by the period end are
    billed once each (docs/contracts.md). Scheduling the same run id again with
    the same terms does nothing.

    Examples:

      billrun run schedule 2026-01 --period-start 2026-01-01 --period-end 2026-01-31

      A rent-only run (seed: different charges billed in separate runs):
      billrun run schedule rent-02 --period-start 2026-02-01 --period-end 2026-02-28
      --category rent --no-usage --no-charges

      A dunning-only run (docs/receivables.md):
      billrun run schedule dun-0315 --period-start 2026-03-15 --period-end 2026-03-15
      --dunning --no-packages --no-usage --no-charges --no-contracts --no-invoices
    """
    period = Period(period_start, period_end)
    with runtime() as rt:
        outcome = schedule_run(
            rt.billing,
            run_id,
            period,
            posting_date,
            selection,
            settings,
            disabled=disabled,
        )
    if json_out:
        output.print_json({"created": outcome.created, **run_json(outcome.run)})
        return
    verb = "scheduled" if outcome.created else "was already scheduled"
    output.console.print(
        f"run {run_id} {verb}: period {outcome.run.period}, posting "
        f"{outcome.run.posting_date}, {outcome.run.selection.describe()}"
    )


@run_app.command("execute")
@refusals
def run_execute(
    run_id: str,
    json_out: Annotated[
        bool, typer.Option("--json", help="No progress bar; print statistics as JSON.")
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Accounts per transaction [default: BILLRUN_BATCH_SIZE or 1000]"),
    ] = None,
    show_drafts: Annotated[
        bool,
        typer.Option(
            "--show-drafts", help="End by listing the invoices the run closed, for review."
        ),
    ] = False,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers",
            help="Hand the billing batches to the running `billrun worker`s over NATS "
            "(BILLRUN_NATS_URL) and follow them; the result is the same as here.",
        ),
    ] = False,
) -> None:
    """Execute (or resume) a scheduled run: bill, invoice and close, batch by batch.

    Safe to repeat, to interrupt and to run in two processes at once: a completed
    run bills nothing more; an interrupted one resumes after its last batch. It
    refuses to start while `billrun run check` finds errors. With --workers, the
    workers bill the batches together and commit them in the run's order; closing
    and collecting stay here; a batch no worker commits within
    BILLRUN_BATCH_ACK_WAIT seconds is billed here (see docs/scaling.md).
    """
    with runtime() as rt, _nats_if(workers, rt) as url:
        size = batch_size or rt.settings.batch_size
        dispatch = batch_dispatch(rt, url) if url is not None else None
        # Read once: refuses an unknown run before drawing a progress bar, and the
        # executor goes on with it (no second read before the first batch).
        run = rt.billing.get_run(run_id)
        if json_out:
            execution = BillRunExecutor(rt.billing, size, dispatch=dispatch).execute_run(run)
        else:
            with progress_bar(f"run {run_id}: billing accounts") as update:
                executor = BillRunExecutor(
                    rt.billing, size, lambda p: update(p.seen, p.in_scope), dispatch=dispatch
                )
                execution = executor.execute_run(run)
        run = execution.run
    if json_out:
        output.print_json({"already_completed": execution.already_completed, **run_json(run)})
        return
    if execution.already_completed:
        output.console.print(f"run {run_id} was already completed; nothing was billed.")
    output.console.print(statistics_table(run))
    comparison = preview_comparison(run)
    if comparison:
        output.console.print(f"run {run_id} {comparison}")
    if show_drafts:
        output.console.print(drafts_table(run_id))


@contextlib.contextmanager
def _nats_if(wanted: bool, rt: Runtime) -> Iterator[str | None]:
    if not wanted:
        yield None
        return
    with nats_url(rt.settings) as url:
        yield url


@run_app.command("retry")
@refusals
def run_retry(
    run_id: str,
    account: Annotated[str, typer.Option(help="The parked account to bill, after the fix.")],
    json_out: JsonFlag = False,
) -> None:
    """Bill an account the run parked (it could not be billed: bad data, a rule that
    raised), once its problem is fixed: the run's period, settings and rates, in one
    transaction. A rate the run lacks (record it with `billrun rates set`) is read
    from the rate book on the run's posting date and added to the run; the rates it
    started with stay. If it fails again nothing is written and the account stays
    parked.
    """
    with runtime() as rt:
        statistics = BillRunExecutor(rt.billing, rt.settings.batch_size).retry(run_id, account)
    if json_out:
        output.print_json(retry_json(run_id, account, statistics))
        return
    output.console.print(
        f"run {run_id}: {account} billed: {statistics.lines} lines, "
        f"{statistics.invoices} invoices closed"
    )


@run_app.command("status")
@refusals
def run_status(
    run_id: str, as_of: AsOfOption = None, version: VersionOption = None, json_out: JsonFlag = False
) -> None:
    """Show a run's state, progress and statistics.

    Now: from the run-status read model. With --as-of or --version: rebuilt from
    the run's events as it was then.
    """
    instant = parse_instant(as_of)
    with runtime() as rt:
        if instant is not None or version is not None:
            past = rt.billing.get_run(run_id, version=version, as_of=instant)
            shown = run_past_json(past, as_of)
        else:
            shown = run_status_now(rt.read_side, rt.billing.get_run(run_id))
    if json_out:
        output.print_json(shown)
        return
    output.console.print(key_value_table(f"Bill run {run_id}", status_rows(shown)))
    if shown.get("failure"):
        output.console.print(
            f"run {run_id} failed: {shown['failure']}\n"
            f"fix the cause, then `billrun run resume {run_id}` (or `billrun run execute {run_id}`)"
        )
    if shown.get("preview"):
        output.console.print(f"run {run_id} {shown['preview']}")
    if shown.get("parked"):
        output.console.print(parked_table(run_id, shown["parked"]))
    if shown.get("step_log") and shown.get("status") != "scheduled":
        output.console.print(steps_table(run_id, shown["step_log"]))


@run_app.command("list")
@refusals
def run_list(json_out: JsonFlag = False) -> None:
    """List bill runs, newest first: status (and whether disabled), the schedule
    that queued each one, and the manager holding its lease while it runs."""
    with runtime() as rt:
        rows = rt.read_side.fresh_runs().all()
        now = rt.billing.clock()
    if json_out:
        output.print_json([row.as_json() for row in rows])
        return
    table = output.compact_table("Bill runs")
    for column in ("run", "status", "period", "posting", "invoices", "totals"):
        # Ids, dates and amounts stay whole (one total per line); the status may wrap.
        table.add_column(
            column, no_wrap=column != "status", justify="right" if column == "invoices" else "left"
        )
    for row in rows:
        table.add_row(
            row.run_id + (f"\nschedule {row.schedule}" if row.schedule else ""),
            row.status
            + ("\ndisabled" if row.disabled else "")
            + lease_cell(row.lease_holder, row.lease_expires_at, now),
            f"{row.period_start} ..\n{row.period_end}",
            str(row.posting_date),
            str(row.counters["invoices"]),
            "\n".join(totals_cells(row.totals)) or "-",
        )
    output.print_table(table, droppable=("posting", "invoices"))


@run_app.command("disable")
@refusals
def run_disable(run_id: str, json_out: JsonFlag = False) -> None:
    """Hold a scheduled or running run back: managers (`billrun scheduler`, `billrun
    worker`) skip it, and one executing it stops at its next batch. `billrun run
    execute` still executes it when asked to."""
    _set_disabled(run_id, True, json_out)


@run_app.command("enable")
@refusals
def run_enable(run_id: str, json_out: JsonFlag = False) -> None:
    """Let managers pick a disabled run again; it resumes after its last batch."""
    _set_disabled(run_id, False, json_out)


@run_app.command("resume")
@refusals
def run_resume(run_id: str, json_out: JsonFlag = False) -> None:
    """Put a failed run back in the managers' queue once its cause is fixed.

    A manager fails a run that is refused (a check error, a missing exchange rate,
    no payment gateway) and leaves it alone from then on; `billrun run status R`
    shows why. After the fix, `billrun run resume R` lets a manager take it again
    (or `billrun run execute R` resumes and executes it here). It goes on from its
    last checkpoint: nothing is billed twice.
    """
    with runtime() as rt:
        run = resume_failed_run(rt.billing, run_id)
    if json_out:
        output.print_json({"run_id": run_id, "status": run.status.value})
        return
    output.console.print(f"run {run_id} resumed: {run.status.value}, queued for a manager")


def _set_disabled(run_id: str, disabled: bool, json_out: bool) -> None:
    with runtime() as rt:
        run, changed = set_run_disabled(rt.billing, run_id, disabled)
    state = "disabled" if disabled else "enabled"
    if json_out:
        output.print_json(disabled_json(run, changed))
        return
    output.console.print(
        f"run {run_id} {state}" if changed else f"run {run_id} was already {state}"
    )


@run_app.command("report")
@refusals
def run_report(run_id: str, json_out: JsonFlag = False) -> None:
    """What a run produced: per step, charge type and currency; accounts; timings;
    its AR steps (dunning stages applied, payments collected)."""
    with runtime() as rt:
        report = rt.read_side.fresh_run_report().report(run_id)
        if report is None:
            raise RunNotFound(run_id)
        run = rt.billing.get_run(run_id)
        report = run_report_json(report, run)
    if json_out:
        output.print_json(report)
        return
    output.console.print(report_tables(report))
    if run.settings.run_dunning or run.settings.collect_payments:
        output.console.print(key_value_table(f"AR steps of run {run_id}", report["receivables"]))
    if report["parked"]:
        output.console.print(parked_table(run_id, report["parked"]))
