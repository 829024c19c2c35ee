"""The invoices section of a run's page: filters (status, account), a page of
invoices with their review status and the reason of a rejection or quarantine,
and review actions (validate, quarantine, reject, cancel, release) for the
invoices ticked or for every invoice the filter matches, with a reason.

It lists what `billrun invoice list --run R --json` lists, a page at a time,
and reviews through `review`, as `billrun invoice approve|... --run R` does.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from application.invoicing.review import STATUSES, InvoiceFilter, review
from domain.invoicing.review import ReviewAction
from entrypoints.console.routing import book_of, first, form_of
from entrypoints.console.views import render
from entrypoints.http.books import Book
from entrypoints.http.pagination import opened_cursor, opened_key
from entrypoints.refusals import UsageError
from entrypoints.representations_invoices import review_json
from projections.invoice_pages import InvoiceQuery, invoice_page

PAGE = 50
REASONED = frozenset({"quarantined", "rejected", "cancelled"})
"""Review statuses shown with their reason (the list loads those invoices for it)."""
ACTIONS = {
    ReviewAction.APPROVE: "Validate",
    ReviewAction.QUARANTINE: "Quarantine",
    ReviewAction.UNQUARANTINE: "Release",
    ReviewAction.REJECT: "Reject",
    ReviewAction.CANCEL: "Cancel",
}
"""The review actions as the seed names them (Opencell's "validate" is approve)."""


def register(router: APIRouter) -> None:
    router.add_api_route("/runs/{run_id}/review", review_invoices, methods=["POST"])


def invoices_section(
    book: Book, run_id: str, status: str, account: str, after: str, page: int
) -> dict[str, Any]:
    """One page of the run's invoices in the order they were opened, read by key
    (`invoice_page`, the API's list): the hundredth page costs what the first
    does. `page` only numbers it for the reader; `after` is where it starts."""
    status = status if status in STATUSES else ""
    query = InvoiceQuery(run_id=run_id, account_id=account or None, status=status or None)
    with book.reading() as read_side:
        view = read_side.fresh_invoices()
        count = view.count(run_id, query.account_id, query.status)
        found, next_key = invoice_page(view, query, opened_key(after or None), PAGE)
    rows = [row.as_json() for row in found]
    held = [UUID(row["id"]) for row in rows if row["review_status"] in REASONED]
    reasons = _review_reasons(book, held)
    for row in rows:
        row["review_reason"] = reasons.get(row["id"])
        row.pop("lines")  # the list shows totals; the invoice's page its lines
    return {
        "rows": rows,
        "count": count,
        "page": page if after else 1,
        "pages": max((count + PAGE - 1) // PAGE, 1),
        "next": None if next_key is None else opened_cursor(next_key),
        "status": status,
        "account": account,
        "statuses": STATUSES,
        "actions": {action.value: label for action, label in ACTIONS.items()},
    }


def _review_reasons(book: Book, ids: list[UUID]) -> dict[str, str | None]:
    """Why each of these invoices was quarantined, rejected or cancelled (on the
    invoice, not in the read model): one load of them, none for a page of drafts."""
    from domain.invoicing.invoice import Invoice

    if not ids:
        return {}
    loaded = book.billing.load_many(Invoice, ids)
    return {str(i): invoice.review_reason for i, invoice in loaded.items()}


async def review_invoices(request: Request, run_id: str) -> Response:
    form = await form_of(request)
    book = book_of(request)
    action = _action(first(form, "action"))
    reason = first(form, "reason") or None
    scope = first(form, "scope")
    status, account = first(form, "status") or None, first(form, "account") or None
    if scope == "filter":
        ids: list[UUID] = []
        selection: InvoiceFilter | None = InvoiceFilter(run_id, status, account)
    else:
        ids = [UUID(text) for text in form.get("invoice", []) if _is_uuid(text)]
        selection = None
        if not ids:
            raise UsageError("tick the invoices to act on, or choose every matching", "invoice")

    def find(chosen: InvoiceFilter) -> list[UUID]:
        with book.reading() as read_side:
            rows = read_side.fresh_invoices().search(
                run_id=chosen.run_id, account_id=chosen.account_id, status=chosen.status
            )
            return [row.id for row in rows]

    outcome = await run_in_threadpool(review, book.billing, action, ids, selection, find, reason)
    result = review_json(outcome)
    if outcome.refused:
        return render(request, "review_result.html", run_id=run_id, result=result, status=422)
    query = "&".join(f"{k}={v}" for k, v in (("status", status), ("account", account)) if v)
    return RedirectResponse(
        f"/console/runs/{run_id}?{query}&done={action.value}:{len(outcome.changed)}#invoices",
        status_code=303,
    )


def _action(text: str | None) -> ReviewAction:
    try:
        return ReviewAction(text or "")
    except ValueError:
        raise UsageError(f"not a review action: {text!r}", "action") from None


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
