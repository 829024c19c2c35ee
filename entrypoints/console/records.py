"""The invoice page and the account page.

Invoice: what `billrun invoice show --json` prints (now, or as of an instant),
its tax summary, its status timeline from its history (every event with its
time and actor), its documents to download (rendered on first access, as
`billrun invoice pdf`) and its credit notes. Account: what `billrun account
show --json` and `account balance --json` print, its open invoices, its history.
"""

from __future__ import annotations

from itertools import islice
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from application.invoicing.documents import (
    FILE_SUFFIXES,
    invoice_documents,
    recorded_format,
    tax_breakdown,
)
from application.receivables.payments import payment_terms
from application.shared.errors import InvoiceNotFound
from application.shared.history import History, HistoryEntry
from entrypoints.common import parse_instant
from entrypoints.console.routing import book_of
from entrypoints.console.views import render
from entrypoints.http.books import Book
from entrypoints.presenters import balance_json, balance_of, payment_json
from entrypoints.representations import account_json
from entrypoints.representations_invoices import invoice_json
from projections.receivables import BUCKETS

HISTORY_SHOWN = 200
MEDIA_TYPES = {"pdf": "application/pdf", "facturx": "application/pdf"}


def register(router: APIRouter) -> None:
    router.add_api_route("/invoices/{invoice_id}", invoice_page, methods=["GET"])
    router.add_api_route(
        "/invoices/{invoice_id}/documents/{document_format}", invoice_document, methods=["GET"]
    )
    router.add_api_route("/accounts/{account_id}", account_page, methods=["GET"])


def _invoice_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvoiceNotFound(text) from None


def invoice_page(request: Request, invoice_id: str, as_of: str = "") -> Response:
    book = book_of(request)
    instant = parse_instant(as_of or None)
    invoice = book.billing.get_invoice(_invoice_id(invoice_id), as_of=instant)
    with book.reading() as read_side:
        posted = read_side.fresh_receivables().payment_status([invoice.id]).get(invoice.id)
    shown = {**invoice_json(invoice), **payment_json(posted, book.billing.clock().date())}
    shown["due_date"] = invoice.due_date.isoformat() if invoice.due_date else None
    taxes = [
        {
            "rate": str(t.tax_rate),
            "category": t.tax_category,
            "base": str(t.taxable_amount),
            "tax": str(t.tax),
        }
        for t in tax_breakdown(invoice)
    ]
    timeline = [_entry(e) for e in islice(History(book.billing).of_invoice(invoice.id), 500)]
    return render(
        request, "invoice.html", invoice=shown, taxes=taxes, timeline=timeline, as_of=as_of,
        documents=sorted(invoice.documents.values(), key=lambda d: d.format),
    )  # fmt: skip


def _entry(entry: HistoryEntry) -> dict[str, Any]:
    payload = entry.payload
    reason = payload.get("reason") or payload.get("review_reason")
    return {
        "at": entry.timestamp,
        "event": entry.event,
        "aggregate": entry.aggregate,
        "version": entry.version,
        "actor": entry.actor or {},
        "reason": reason,
        "notification_id": entry.notification_id,
    }


async def invoice_document(request: Request, invoice_id: str, document_format: str) -> Response:
    """The document's bytes, rendered first when it never was (a write the reader
    never sees: rendering is idempotent and records only what the run would)."""
    book = book_of(request)
    recorded = recorded_format(document_format)
    found = _invoice_id(invoice_id)

    def fetch() -> tuple[bytes, str]:
        renderer = invoice_documents(book.billing, book.runtime.settings)
        (document,) = renderer.render(found, [recorded])
        number = book.billing.get_invoice(found).display_number or str(found)
        return renderer.content(document), f"{number}{FILE_SUFFIXES[recorded]}"

    content, name = await run_in_threadpool(fetch)
    return Response(
        content,
        media_type=MEDIA_TYPES.get(recorded, "application/xml"),
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def account_page(request: Request, account_id: str) -> Response:
    book = book_of(request)
    return render(request, "account.html", **account_context(book, account_id))


def account_context(book: Book, account_id: str) -> dict[str, Any]:
    account = book.billing.get_account(account_id)
    day = book.billing.clock().date()
    with book.reading() as read_side:
        # `balance_of` reads through the runtime: its read side is the one locked here.
        balance = balance_of(book.runtime, account_id, day)
        invoices = [
            row.as_json()
            for row in read_side.fresh_invoices().search(account_id=account_id, limit=20)
        ]
    terms = payment_terms(book.billing, account_id)
    history = [_entry(e) for e in islice(History(book.billing).of_account(account_id), 100)]
    return {
        "account": account_json(account),
        "balance": balance_json(balance, terms.days, terms.source),
        "buckets": BUCKETS,
        "invoices": invoices,
        "history": history,
    }
