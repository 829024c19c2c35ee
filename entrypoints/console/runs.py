"""The bill runs page: runs with their status, period, selection, counts and
totals per currency (filtered by status and period), the one-off schedule form
(LogiSense's), and the schedules with their next occurrence.

It reads what `billrun run list --json` and `billrun schedule list --json`
print, and schedules through `schedule_run`, as `billrun run schedule` does.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from application.runs.scheduler import first_due, list_schedules
from application.runs.scheduling import schedule_run
from application.shared.errors import InvalidInput, Problem
from domain.runs.settings import Selection
from domain.shared.periods import Period
from entrypoints import run_options
from entrypoints.console.routing import Form, book_of, first, form_of
from entrypoints.console.views import field_errors, render
from entrypoints.http.books import Book
from entrypoints.http.problems import problem_of
from entrypoints.representations import schedule_json

STEP_TOGGLES = (
    ("run_dunning", "AR terms (dunning)", False),
    ("bill_packages", "Bill packages", True),
    ("bill_usage", "Bill usage", True),
    ("run_contracts", "Contract terms", True),
    ("bill_charges", "One-off charges", True),
    ("run_invoices", "Close invoices", True),
    ("render_invoices", "Render PDF and XML", True),
    ("deliver_invoices", "Deliver invoices", True),
    ("approval_required", "Deliver only once approved", False),
    ("collect_payments", "Collect payments", False),
    ("catch_up", "Catch up stranded bill dates", False),
)
"""The run settings toggles of the schedule form, in the seed's order, with
their defaults (those of `billrun run schedule`)."""
STATUSES = ("scheduled", "running", "completed", "failed", "cancelled")


def register(router: APIRouter) -> None:
    router.add_api_route("/runs", runs_page, methods=["GET"])
    router.add_api_route("/runs", schedule, methods=["POST"])


def runs_page(request: Request, status: str = "", period: str = "") -> Response:
    book = book_of(request)
    return render(request, "runs.html", **runs_context(book, status, period), form={}, errors={})


def runs_context(book: Book, status: str, period: str) -> dict[str, Any]:
    with book.reading() as read_side:
        rows = [row.as_json() for row in read_side.fresh_runs().all()]
    now = book.billing.clock()
    schedules = [
        schedule_json(s, now, first_due(book.billing, s, now)) for s in list_schedules(book.billing)
    ]
    month = _month(period)
    shown = [row for row in rows if _matches(row, status, month)]
    return {
        "runs": shown,
        "total": len(rows),
        "status_filter": status,
        "period": period,
        "statuses": STATUSES,
        "schedules": schedules,
        "toggles": STEP_TOGGLES,
    }


def _month(text: str) -> tuple[date, date] | None:
    """`2026-03` -> its first and last day; anything else: no period filter."""
    try:
        start = date.fromisoformat(f"{text}-01")
    except ValueError:
        return None
    following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, date.fromordinal(following.toordinal() - 1)


def _matches(row: dict[str, Any], status: str, month: tuple[date, date] | None) -> bool:
    if status == "disabled":
        if not row["disabled"]:
            return False
    elif status and row["status"] != status:
        return False
    if month is None:
        return True
    start, end = date.fromisoformat(row["period_start"]), date.fromisoformat(row["period_end"])
    return start <= month[1] and end >= month[0]


async def schedule(request: Request) -> Response:
    form = await form_of(request)
    book = book_of(request)
    try:
        run_id = await run_in_threadpool(_schedule, book, form)
    except Exception as error:
        problem = problem_of(error)
        if problem.status >= 500:
            raise
        errors = field_errors(problem.errors) or {"form": problem.detail}
        flat = {name: values[0] for name, values in form.items()}
        context = await run_in_threadpool(runs_context, book, "", "")
        return render(
            request, "runs.html", status=422, **context, form=flat, errors=errors,
            detail=problem.detail, open_form=True,
        )  # fmt: skip
    return RedirectResponse(f"/console/runs/{run_id}", status_code=303)


def _schedule(book: Book, form: Form) -> str:
    run_id, start, end, posting = _checked_form(form)
    selection = run_options.selection(_listed(form, "groups"), _listed(form, "accounts"))
    on = {name: name in form for name, _, _ in STEP_TOGGLES}
    settings = run_options.run_settings(
        packages=on["bill_packages"], usage=on["bill_usage"], charges=on["bill_charges"],
        contracts=on["run_contracts"], category=_listed(form, "categories"),
        invoices=on["run_invoices"], render=on["render_invoices"],
        deliver=on["deliver_invoices"], approval_required=on["approval_required"],
        dunning=on["run_dunning"], collect_payments=on["collect_payments"],
        catch_up=on["catch_up"],
    )  # fmt: skip
    schedule_run(
        book.billing, run_id, Period(start, end), posting, Selection.model_validate(selection),
        settings, disabled="disabled" in form,
    )  # fmt: skip
    return run_id


def _checked_form(form: Form) -> tuple[str, date, date, date | None]:
    """The name and dates, every problem found at once (each shown beside its
    field), before anything is asked of the application."""
    problems: list[Problem] = []
    run_id = first(form, "run_id") or ""
    if not run_id:
        problems.append(Problem("run_id", "required: a name for the run, e.g. 2026-01"))
    start = _date(form, "period_start", True, problems)
    end = _date(form, "period_end", True, problems)
    posting = _date(form, "posting_date", False, problems)
    if start is not None and end is not None and end < start:
        problems.append(
            Problem("period_end", f"the period ends ({end}) before it starts ({start})")
        )
    if problems or start is None or end is None:
        raise InvalidInput("schedule form", problems)
    return run_id, start, end, posting


def _date(form: Form, name: str, required: bool, problems: list[Problem]) -> date | None:
    text = first(form, name)
    if not text:
        if required:
            problems.append(Problem(name, "required: a date (YYYY-MM-DD)"))
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(Problem(name, f"not a date: {text!r} (YYYY-MM-DD)"))
        return None


def _listed(form: Form, name: str) -> list[str]:
    """A comma- or space-separated list field."""
    text = first(form, name) or ""
    return [item for item in text.replace(",", " ").split() if item]
