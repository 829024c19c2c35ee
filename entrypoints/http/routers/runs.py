"""Bill runs: schedule, check, preview, execute and process, hold back, cancel,
retry parked accounts, and read their status, report and statistics.

Scheduling answers 202 with the run's URL: a worker's manager executes it, as
for `billrun run schedule`. Executing in the request (`POST .../execute`) is the
CLI's `billrun run execute`, for small runs and tests; a large run belongs to the
worker. Each route calls the application service its CLI command calls and
answers that command's `--json` (`entrypoints/representations_runs.py`).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field

from application.runs.cancel import cancel_run
from application.runs.check import check_run
from application.runs.executor import BillRunExecutor
from application.runs.previews import preview_run
from application.runs.scheduler import resume_failed_run, set_run_disabled
from application.runs.scheduling import schedule_run
from application.runs.workflow import describe_run, process_run
from application.shared.errors import RunNotFound
from domain.runs.settings import CancelMode, RunSettings, Selection
from domain.shared.periods import Period
from entrypoints.http.books import Book
from entrypoints.http.pagination import After, Limit, page_of
from entrypoints.http.routers.common import TenantBook, v1_router
from entrypoints.refusals import UsageError
from entrypoints.representations_runs import (
    cancel_json,
    description_json,
    disabled_json,
    preview_json,
    process_json,
    retry_json,
    run_json,
    run_past_json,
    run_report_json,
    run_status_now,
    statistics_json,
)

router = v1_router("bill runs")

Json = dict[str, Any]

RUN_ID = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunRequest(_Strict):
    """A run to schedule (`billrun run schedule`)."""

    run_id: str = RUN_ID
    period_start: date
    period_end: date
    posting_date: date | None = Field(default=None, description="Default: the period end")
    selection: Selection = Field(
        default_factory=Selection, description="Accounts and bill groups; both empty: all"
    )
    settings: RunSettings = Field(default_factory=RunSettings)
    disabled: bool = Field(
        default=False, description="Held back from managers until enabled (to check it first)"
    )


class CancelWay(StrEnum):
    REOPEN = "reopen"
    DISCARD = "discard"


class CancelRequest(_Strict):
    mode: CancelWay = Field(
        description="reopen: unbill what it billed (a later run bills it); discard: write it off"
    )
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")


class DescribeRequest(_Strict):
    description: str = Field(max_length=500, description="Free text; empty clears it")


class RetryRequest(_Strict):
    account: str = Field(min_length=1, max_length=100, description="The parked account")


def _location(run_id: str) -> str:
    return f"/v1/runs/{run_id}"


@router.post("/runs", status_code=202, summary="Schedule a bill run")
def create_run(book: TenantBook, request: RunRequest, response: Response) -> Json:
    """Scheduled, and executed by a worker's manager (unless `disabled`). The same
    run id with the same terms again schedules nothing (`created: false`)."""
    outcome = schedule_run(
        book.billing,
        request.run_id,
        Period(request.period_start, request.period_end),
        request.posting_date,
        request.selection,
        request.settings,
        disabled=request.disabled,
    )
    response.headers["Location"] = _location(request.run_id)
    return {"created": outcome.created, **run_json(outcome.run)}


@router.get("/runs", summary="List bill runs")
def list_runs(
    book: TenantBook,
    status: Annotated[str | None, Query(max_length=40, description="Only in this status")] = None,
    disabled: Annotated[bool | None, Query(description="Only disabled (or enabled) runs")] = None,
    limit: Limit = 20,
    after: After = None,
) -> Json:
    """In the order they were scheduled (new ones last), each as `billrun run list
    --json` shows it."""
    with book.reading() as read_side:
        rows = read_side.fresh_runs().all()
    chosen = [
        row
        for row in rows
        if (status is None or row.status == status)
        and (disabled is None or row.disabled == disabled)
    ]
    chosen.sort(key=_run_position)
    return page_of(chosen, _run_position, after, limit, lambda row: row.as_json())


def _run_position(row: Any) -> str:
    return f"{row.scheduled_at.isoformat()}\0{row.run_id}"


@router.get("/runs/{run_id}", summary="A run's status and steps")
def get_run(
    book: TenantBook,
    run_id: str,
    as_of: Annotated[datetime | None, Query(description="As it was at this instant")] = None,
    version: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="As it was at this version")
    ] = None,
) -> Json:
    """`billrun run status --json`: state, progress, statistics and the step log;
    with `as_of` or `version`, rebuilt from its events as it was then."""
    if as_of is not None and as_of.tzinfo is None:
        raise UsageError("give the instant's offset, e.g. 2026-01-31T12:00:00Z", "query.as_of")
    if as_of is not None or version is not None:
        past = book.billing.get_run(run_id, version=version, as_of=as_of)
        return run_past_json(past, None if as_of is None else as_of.isoformat())
    run = book.billing.get_run(run_id)
    with book.reading() as read_side:
        return run_status_now(read_side, run)


@router.get("/runs/{run_id}/check", summary="Check a run before it starts")
def get_check(book: TenantBook, run_id: str) -> Json:
    """`billrun run check --json`: errors (execution refuses to start while any
    remains) and warnings."""
    return check_run(book.billing, run_id).as_json()


@router.post("/runs/{run_id}/preview", summary="Preview what a run would bill")
def create_preview(book: TenantBook, run_id: str) -> Json:
    """`billrun run preview --json`: computed by the code that bills, writing nothing
    but the preview on the run."""
    preview = preview_run(book.billing, run_id, _batch_size(book))
    return {"run_id": run_id, **preview_json(preview.summary), **preview.as_json()}


@router.post("/runs/{run_id}/execute", summary="Execute a run in this request")
def execute_run(book: TenantBook, run_id: str) -> Json:
    """`billrun run execute --json`: bills, invoices and closes, batch by batch,
    before answering. Safe to repeat: a completed run bills nothing more. A large
    run is better left to a worker's manager (schedule it, poll its status)."""
    run = book.billing.get_run(run_id)
    execution = BillRunExecutor(book.billing, _batch_size(book)).execute_run(run)
    return {"already_completed": execution.already_completed, **run_json(execution.run)}


@router.post("/runs/{run_id}/process", summary="Move a run to its next workflow state")
def process(book: TenantBook, run_id: str) -> Json:
    """`billrun run process --json`: scheduled -> drafts ready (executes it), drafts
    ready -> validated (approves its drafts; refused while any is quarantined),
    validated -> completed."""
    before = book.billing.get_run(run_id).workflow_state
    after = process_run(book.billing, run_id, _batch_size(book))
    return process_json(run_id, before, after)


@router.post("/runs/{run_id}/disable", summary="Hold a run back from managers")
def disable_run(book: TenantBook, run_id: str) -> Json:
    run, changed = set_run_disabled(book.billing, run_id, True)
    return disabled_json(run, changed)


@router.post("/runs/{run_id}/enable", summary="Let managers pick a run again")
def enable_run(book: TenantBook, run_id: str) -> Json:
    run, changed = set_run_disabled(book.billing, run_id, False)
    return disabled_json(run, changed)


@router.post("/runs/{run_id}/description", summary="Set a run's description")
def describe(book: TenantBook, run_id: str, request: DescribeRequest) -> Json:
    """`billrun run describe --json`: the one thing that changes once a run exists;
    the same text again writes nothing (`changed: false`)."""
    run, changed = describe_run(book.billing, run_id, request.description)
    return description_json(run, changed)


@router.post("/runs/{run_id}/resume", summary="Queue a failed run again")
def resume_run(book: TenantBook, run_id: str) -> Json:
    """`billrun run resume --json`, once the cause of its failure is fixed."""
    run = resume_failed_run(book.billing, run_id)
    return {"run_id": run_id, "status": run.status.value}


@router.post("/runs/{run_id}/cancel", summary="Cancel a run (reopen or discard)")
def cancel(book: TenantBook, run_id: str, request: CancelRequest) -> Json:
    """`billrun run cancel --json`: its draft and quarantined invoices are cancelled;
    what it billed is unbilled (reopen) or written off (discard). Refused, writing
    nothing, while it runs or once one of its invoices is approved."""
    mode = CancelMode(request.mode.value)
    outcome = cancel_run(book.billing, run_id, mode, request.reason)
    return cancel_json(run_id, mode, outcome)


@router.post("/runs/{run_id}/retry", summary="Bill an account the run parked")
def retry(book: TenantBook, run_id: str, request: RetryRequest) -> Json:
    """`billrun run retry --json`: once its problem is fixed; fails again writing
    nothing, the account staying parked."""
    statistics = BillRunExecutor(book.billing, _batch_size(book)).retry(run_id, request.account)
    return retry_json(run_id, request.account, statistics)


@router.get("/runs/{run_id}/report", summary="What a run produced")
def get_report(book: TenantBook, run_id: str) -> Json:
    """`billrun run report --json`: per step, charge type and currency; accounts;
    timings; its AR steps."""
    run = book.billing.get_run(run_id)
    with book.reading() as read_side:
        report = read_side.fresh_run_report().report(run_id)
    if report is None:
        raise RunNotFound(run_id)
    return run_report_json(report, run)


@router.get("/runs/{run_id}/statistics", summary="A run's statistics")
def get_statistics(book: TenantBook, run_id: str) -> Json:
    """The figures the run recorded: accounts seen, billed, parked; lines,
    invoices and totals per currency."""
    return statistics_json(book.billing.get_run(run_id))


def _batch_size(book: Book) -> int:
    return book.runtime.settings.batch_size
