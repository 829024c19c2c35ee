"""A bill run's page, as Opencell's billing run details: the actions bar (what
the run's status allows), its configuration (the description editable), the
execution report (steps in the seed's order, polled while it runs), the
statistics against its preview (the Preview action records one), and its invoices (`run_invoices`).

Actions call what the CLI's `billrun run ...` commands call; execution and
document generation run as jobs of the server (`jobs`), the page polling them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from application.invoicing.documents import DocumentNotAvailable, invoice_documents
from application.runs.cancel import cancel_run
from application.runs.executor import BillRunExecutor
from application.runs.previews import preview_run
from application.runs.scheduler import set_run_disabled
from application.runs.workflow import describe_run, process_run
from domain.runs.bill_run import BillRun
from domain.runs.settings import CancelMode, RunStatus, WorkflowState
from entrypoints.console.jobs import Jobs, Progress
from entrypoints.console.routing import book_of, first, form_of
from entrypoints.console.run_invoices import invoices_section
from entrypoints.console.views import render
from entrypoints.http.books import Book
from entrypoints.refusals import UsageError
from entrypoints.representations_runs import run_status_now, settings_rows

DOCUMENT_FORMATS = {"pdf": "PDF", "ubl": "XML (UBL 2.1)"}


def register(router: APIRouter) -> None:
    router.add_api_route("/runs/{run_id}", run_page, methods=["GET"])
    router.add_api_route("/runs/{run_id}/execution", execution_fragment, methods=["GET"])
    for name, action in ACTIONS.items():
        router.add_api_route(f"/runs/{{run_id}}/{name}", action, methods=["POST"])


def jobs_of(request: Request) -> Jobs:
    jobs: Jobs = request.app.state.console_jobs
    return jobs


def run_page(
    request: Request,
    run_id: str,
    status: str = "",
    account: str = "",
    after: str = "",
    page: int = 1,
) -> Response:
    book = book_of(request)
    details = run_details(book, run_id, jobs_of(request))
    invoices = invoices_section(book, run_id, status, account, after, max(page, 1))
    return render(request, "run.html", run=details, invoices=invoices, formats=DOCUMENT_FORMATS)


def execution_fragment(request: Request, run_id: str) -> Response:
    details = run_details(book_of(request), run_id, jobs_of(request))
    return render(request, "_execution.html", run=details)


def run_details(book: Book, run_id: str, jobs: Jobs) -> dict[str, Any]:
    """What `billrun run status --json` shows (`run_status_now`, the one status
    builder), with what the page adds: the settings as rows, the actions the
    status allows and the jobs running for the run."""
    run = book.billing.get_run(run_id)
    with book.reading() as read_side:
        shown = run_status_now(read_side, run)
    job = jobs.of(book.tenant, "execute", run_id)
    documents = jobs.of(book.tenant, "documents", run_id)
    previewing = jobs.of(book.tenant, "preview", run_id)
    running = [j for j in (job, documents, previewing) if j is not None and j.running]
    return {
        **shown,
        "settings_rows": settings_rows(shown["settings"]),
        # What the preview predicted, beside what execution billed (statistics).
        "preview_figures": None if run.preview is None else run.preview.model_dump(mode="json"),
        "selection_text": run.selection.describe(),
        "actions": actions_for(run),
        "executing": job is not None and job.running,
        "job": job,
        "documents_job": documents,
        "preview_job": previewing,
        "polling": bool(running) or run.status is RunStatus.RUNNING,
    }


def actions_for(run: BillRun) -> list[str]:
    """The actions bar's buttons for the run's status (Opencell's list changes
    with it): only those the application would accept now."""
    state, status = run.workflow_state, run.status
    if status is RunStatus.CANCELLED or state is WorkflowState.COMPLETED:
        return ["pdf", "ubl"] if state is WorkflowState.COMPLETED else []
    actions: list[str] = []
    if state in (WorkflowState.DRAFTS_READY, WorkflowState.VALIDATED):
        actions += ["pdf", "ubl"]
    if status in (RunStatus.SCHEDULED, RunStatus.FAILED) or (
        status is RunStatus.RUNNING and run.disabled
    ):
        actions.append("execute")
    if status is RunStatus.SCHEDULED:
        actions.append("preview")  # only a run not started yet is previewed
    if status in (RunStatus.SCHEDULED, RunStatus.RUNNING):
        actions.append("enable" if run.disabled else "disable")
    if state is not WorkflowState.RUNNING:
        actions.append("process")
    if run.parked and state is WorkflowState.DRAFTS_READY:
        actions.append("retry")
    if status is not RunStatus.RUNNING:
        actions.append("cancel")
    return actions


def _back(run_id: str, anchor: str = "") -> Response:
    return RedirectResponse(f"/console/runs/{run_id}{anchor}", status_code=303)


async def execute(request: Request, run_id: str) -> Response:
    book = book_of(request)
    run = await run_in_threadpool(book.billing.get_run, run_id)  # an unknown run is refused

    def work(update: Progress) -> str:
        def progress(p: Any) -> None:
            update(p.seen, p.in_scope)

        size = book.runtime.settings.batch_size
        execution = BillRunExecutor(book.billing, size, progress).execute_run(run)
        return f"{execution.run.statistics.invoices} invoices closed"

    jobs_of(request).start(book.tenant, "execute", run_id, work)
    return _back(run_id, "#execution")


async def preview(request: Request, run_id: str) -> Response:
    """Compute what the run would bill and record it on the run (`billrun run
    preview`): statistics then compare the execution with it. A job: it reads
    every account in scope, as execution does."""
    book = book_of(request)
    await run_in_threadpool(book.billing.get_run, run_id)  # an unknown run is refused
    size = book.runtime.settings.batch_size

    def work(update: Progress) -> str:
        summary = preview_run(book.billing, run_id, size).summary
        return f"{summary.invoices} invoices, {summary.lines} lines previewed"

    jobs_of(request).start(book.tenant, "preview", run_id, work)
    return _back(run_id, "#execution")


async def process(request: Request, run_id: str) -> Response:
    book = book_of(request)
    run = await run_in_threadpool(book.billing.get_run, run_id)
    if run.workflow_state in (WorkflowState.SCHEDULED, WorkflowState.FAILED):
        return await execute(request, run_id)  # the next step is executing: a job
    size = book.runtime.settings.batch_size
    await run_in_threadpool(process_run, book.billing, run_id, size)
    return _back(run_id)


async def disable(request: Request, run_id: str) -> Response:
    await run_in_threadpool(set_run_disabled, book_of(request).billing, run_id, True)
    return _back(run_id)


async def enable(request: Request, run_id: str) -> Response:
    await run_in_threadpool(set_run_disabled, book_of(request).billing, run_id, False)
    return _back(run_id)


async def cancel(request: Request, run_id: str) -> Response:
    form = await form_of(request)
    mode = first(form, "mode")
    reason = first(form, "reason")
    if mode not in (CancelMode.REOPEN.value, CancelMode.DISCARD.value):
        raise UsageError("choose: reopen billed items or discard them", "mode")
    if not reason:
        raise UsageError("required: say why the run is cancelled", "reason")
    await run_in_threadpool(cancel_run, book_of(request).billing, run_id, CancelMode(mode), reason)
    return _back(run_id)


async def retry(request: Request, run_id: str) -> Response:
    account = first(await form_of(request), "account")
    if not account:
        raise UsageError("required: the parked account to bill", "account")
    book = book_of(request)
    executor = BillRunExecutor(book.billing, book.runtime.settings.batch_size)
    await run_in_threadpool(executor.retry, run_id, account)
    return _back(run_id)


async def describe(request: Request, run_id: str) -> Response:
    description = first(await form_of(request), "description") or ""
    await run_in_threadpool(describe_run, book_of(request).billing, run_id, description)
    return _back(run_id)


async def documents(request: Request, run_id: str) -> Response:
    """Generate one format for every closed invoice of the run (Opencell's Generate
    PDF / Generate XML), as `billrun run documents --format F`."""
    wanted = first(await form_of(request), "format")
    if wanted not in DOCUMENT_FORMATS:
        raise UsageError(f"not a format: {wanted!r}; use pdf or ubl", "format")
    book = book_of(request)
    await run_in_threadpool(book.billing.get_run, run_id)

    def work(update: Progress) -> str:
        with book.reading() as read_side:
            ids = [row.id for row in read_side.fresh_invoices().search(run_id, status="closed")]
        renderer = invoice_documents(book.billing, book.runtime.settings)
        missing = 0
        for done, invoice_id in enumerate(ids, start=1):
            try:
                renderer.render(invoice_id, [wanted])
            except DocumentNotAvailable:
                missing += 1
            update(done, len(ids))
        return f"{DOCUMENT_FORMATS[wanted]}: {len(ids) - missing} documents" + (
            f", {missing} not available" if missing else ""
        )

    jobs_of(request).start(book.tenant, "documents", run_id, work)
    return _back(run_id, "#execution")


ACTIONS = {
    "execute": execute,
    "preview": preview,
    "process": process,
    "disable": disable,
    "enable": enable,
    "cancel": cancel,
    "retry": retry,
    "description": describe,
    "documents": documents,
}
