"""Pages of the invoices read model in a stable order, for the HTTP API's list.

Keyset pagination: a page is the rows after the previous page's last
(opened_at, id), read through the index on those columns, so the 1,000th page
costs what the first does (an OFFSET would read and discard every row before
it). The key never changes once an invoice is opened, so a client paging to the
end while invoices are opened, closed or reviewed sees every invoice that
existed when it began exactly once; new ones come last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from psycopg.sql import SQL, Composable

from projections.invoices import REVIEW_STATUSES, InvoiceRow, InvoicesView


@dataclass(frozen=True)
class InvoiceQuery:
    """The filters of the invoice list; None: any."""

    run_id: str | None = None
    """Invoices the run opened or closed (close types)."""
    account_id: str | None = None
    status: str | None = None
    """A lifecycle status (open, closed) or a review status (draft, approved, ...)."""
    document_type: str | None = None
    """`invoice` or `credit_note`."""
    posted_from: date | None = None
    """Posting (issue) date on or after."""
    posted_to: date | None = None
    """Posting (issue) date on or before."""


PageKey = tuple[datetime, UUID]
"""Where a page ends: its last row's (opened_at, id)."""


def invoice_page(
    view: InvoicesView, query: InvoiceQuery, after: PageKey | None, limit: int
) -> tuple[list[InvoiceRow], PageKey | None]:
    """Up to `limit` invoices after `after`, with their lines, and the key of the
    next page (None on the last)."""
    clauses, params = _clauses(query)
    if after is not None:
        clauses.append(SQL("(opened_at, id) > (%s, %s)"))
        params += list(after)
    where = SQL("WHERE ") + SQL(" AND ").join(clauses) if clauses else SQL("")
    statement = SQL("SELECT * FROM {} {} ORDER BY opened_at, id LIMIT %s").format(
        view.table("invoices"), where
    )
    with view.datastore.transaction(commit=False) as curs:
        curs.execute(statement, [*params, limit + 1])
        rows = curs.fetchall()
    chosen = rows[:limit]
    lines = view.lines_of([row["id"] for row in chosen]) if chosen else {}
    found = [InvoiceRow.from_row(row, lines.get(row["id"], [])) for row in chosen]
    more = len(rows) > limit
    last = chosen[-1] if chosen else None
    return found, (last["opened_at"], last["id"]) if more and last is not None else None


def _clauses(query: InvoiceQuery) -> tuple[list[Composable], list[Any]]:
    clauses: list[Composable] = []
    params: list[Any] = []

    def add(clause: str, *values: Any) -> None:
        clauses.append(SQL(clause))  # fixed text of this module; values are bound
        params.extend(values)

    if query.run_id is not None:
        add("(run_id = %s OR closed_by_run = %s)", query.run_id, query.run_id)
    if query.account_id is not None:
        add("account_id = %s", query.account_id)
    if query.status in REVIEW_STATUSES:
        add("review_status = %s", query.status)
    elif query.status is not None:
        add("status = %s", query.status)
    if query.document_type is not None:
        add("document_type = %s", query.document_type)
    if query.posted_from is not None:
        add("posting_date >= %s", query.posted_from)
    if query.posted_to is not None:
        add("posting_date <= %s", query.posted_to)
    return clauses, params
