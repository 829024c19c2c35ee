"""Invoices: find and read them, review them one by one or in bulk by filter,
and correct issued ones with credit notes.

The list pages the invoices read model by key (`projections/invoice_pages.py`),
never by offset. Review answers `billrun invoice approve|... --json`: how many
changed, which were already so, and each refusal with its reason. A bulk review
by filter answers 200 with its refusals listed (each invoice is judged and saved
on its own, as in the CLI); one invoice refused is a 409 problem.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from application.invoicing.credit_notes import credit_invoice
from application.invoicing.review import STATUSES, InvoiceFilter, review
from domain.invoicing.credit_notes import CreditTerms
from domain.invoicing.documents import DocumentType
from domain.invoicing.review import ReviewAction
from entrypoints.http.books import Book
from entrypoints.http.etags import check_if_match, tag
from entrypoints.http.pagination import After, Limit, opened_cursor, opened_key
from entrypoints.http.problems import ProblemError
from entrypoints.http.routers.common import TenantBook, v1_router
from entrypoints.presenters import document_of, payment_statuses, resolve_invoice_id
from entrypoints.refusals import UsageError
from entrypoints.representations_invoices import (
    credit_json,
    invoice_row_json,
    invoice_show_json,
    review_json,
)
from projections.invoice_pages import InvoiceQuery, invoice_page

router = v1_router("invoices")

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""No control characters (PostgreSQL refuses NUL in text): a filter or id with one
is refused as input, not a fault."""

Json = dict[str, Any]

InvoiceId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=PRINTABLE,
        description="Its id (uuid) or number (42, INV-00000042, CN-00000003, BE-2026-000001)",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reason(_Strict):
    reason: str | None = Field(
        default=None,
        max_length=500,
        description="Why, recorded on the invoice (required to quarantine, reject, cancel)",
    )


class ReviewSelection(_Strict):
    """The invoices to review: by id or number, or by filter (a run's, optionally
    in one status and of one account)."""

    invoices: list[Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]] = Field(
        default=[], max_length=1000, description="Ids or numbers"
    )
    run: str | None = Field(default=None, min_length=1, max_length=100, pattern=PRINTABLE)
    status: str | None = Field(
        default=None, max_length=40, description="With run: " + ", ".join(STATUSES)
    )
    account: str | None = Field(default=None, min_length=1, max_length=100, pattern=PRINTABLE)
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_way(self) -> ReviewSelection:
        if self.run is None and (self.status is not None or self.account is not None):
            raise ValueError("status and account narrow run: give run too")
        if bool(self.invoices) == (self.run is not None):
            raise ValueError("name invoices, or select them with run (one of them)")
        return self


class CreditRequest(_Strict):
    full: bool = Field(default=False, description="Credit the whole invoice")
    amount: Decimal | None = Field(default=None, gt=0, description="Or this net amount")
    tax_rate: Decimal | None = Field(
        default=None, ge=0, le=100, description="With amount: the rate it is at"
    )
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")
    credit_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Names this credit among the invoice's (default: from amount, rate, reason)",
    )

    @model_validator(mode="after")
    def _what(self) -> CreditRequest:
        if self.full == (self.amount is not None):
            raise ValueError("say what to credit: full, or amount (one of them)")
        if self.tax_rate is not None and self.amount is None:
            raise ValueError("tax_rate goes with amount (a full credit keeps each line's rate)")
        return self


def invoice_id_of(book: Book, text: str) -> UUID:
    """The id an invoice is named by in a path (its id or one of its numbers)."""
    with book.reading():
        return resolve_invoice_id(book.runtime, text)


@router.get("/invoices", summary="List invoices")
def list_invoices(
    book: TenantBook,
    run: Annotated[
        str | None, Query(max_length=100, pattern=PRINTABLE, description="Opened or closed by it")
    ] = None,
    account: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    status: Annotated[str | None, Query(max_length=40, description=", ".join(STATUSES))] = None,
    document_type: DocumentType | None = None,
    posted_from: Annotated[date | None, Query(description="Posting date on or after")] = None,
    posted_to: Annotated[date | None, Query(description="Posting date on or before")] = None,
    limit: Limit = 20,
    after: After = None,
) -> Json:
    """In the order they were opened (new ones last), each as `billrun invoice list
    --json` shows it: with its lines, due date and payment status today."""
    if status is not None and status not in STATUSES:
        raise UsageError(f"not a status; use one of {', '.join(STATUSES)}", "query.status")
    query = InvoiceQuery(
        run, account, status, None if document_type is None else document_type.value,
        posted_from, posted_to,
    )  # fmt: skip
    with book.reading() as read_side:
        rows, next_key = invoice_page(read_side.fresh_invoices(), query, opened_key(after), limit)
        posted = list(payment_statuses(read_side.fresh_receivables(), rows, lambda row: row.id))
    today = book.billing.clock().date()
    return {
        "items": [invoice_row_json(row, item, today) for row, item in posted],
        "next": None if next_key is None else opened_cursor(next_key),
    }


@router.get("/invoices/{invoice_id}", summary="Get an invoice")
def get_invoice(book: TenantBook, invoice_id: InvoiceId, response: Response) -> Json:
    """`billrun invoice show --json`: rebuilt from its events, with its due date and
    payment status today. ETag: its version."""
    found = book.billing.get_invoice(invoice_id_of(book, invoice_id))
    with book.reading():
        posted = document_of(book.runtime, found.id)
    tag(response, found.version)
    return invoice_show_json(found, posted, book.billing.clock().date())


def _review_one(action: ReviewAction) -> None:
    def review_invoice(
        book: TenantBook, invoice_id: InvoiceId, body: Reason, request: Request
    ) -> Json:
        chosen = invoice_id_of(book, invoice_id)
        check_if_match(request, book.billing.get_invoice(chosen).version)
        outcome = review(book.billing, action, [chosen], reason=body.reason)
        for refused in outcome.refused:
            raise ProblemError(
                409,
                "review-refused",
                f"Refused to {action.value}, nothing written",
                f"{refused.invoice}: {refused.reason}",
            )
        return review_json(outcome)

    review_invoice.__doc__ = (
        f"`billrun invoice {action.value} ID --json`; refused (409) when the invoice "
        "is not in a state this action applies to. With If-Match: refused (412) when "
        "it changed since that version."
    )
    router.post(
        f"/invoices/{{invoice_id}}/{action.value}",
        summary=f"{action.value.capitalize()} an invoice",
        name=f"{action.value}_invoice",
    )(review_invoice)


def _review_many(action: ReviewAction) -> None:
    def review_invoices(book: TenantBook, body: ReviewSelection) -> Json:
        ids = [invoice_id_of(book, text) for text in body.invoices]
        selection = None if body.run is None else InvoiceFilter(body.run, body.status, body.account)

        def find(chosen: InvoiceFilter) -> list[UUID]:
            with book.reading() as read_side:
                found = read_side.fresh_invoices().search(
                    run_id=chosen.run_id, account_id=chosen.account_id, status=chosen.status
                )
                return [row.id for row in found]

        outcome = review(book.billing, action, ids, selection, find, body.reason)
        return review_json(outcome)

    review_invoices.__doc__ = (
        f"`billrun invoice {action.value} --json` by ids or by filter (run, status, "
        "account): how many changed, how many were already so, and each invoice "
        "refused with its reason (200 even then: the others were saved)."
    )
    router.post(
        f"/invoices/{action.value}",
        summary=f"{action.value.capitalize()} invoices in bulk",
        name=f"{action.value}_invoices",
    )(review_invoices)


for _action in ReviewAction:
    _review_one(_action)
    _review_many(_action)


@router.post("/invoices/{invoice_id}/credit-notes", status_code=201, summary="Credit an invoice")
def create_credit_note(
    book: TenantBook, invoice_id: InvoiceId, body: CreditRequest, response: Response
) -> Json:
    """`billrun invoice credit --json`: a credit note of its own (CN-...), numbered
    and posted to the account's receivables. The same credit again issues nothing
    new (`created: false`)."""
    terms = CreditTerms(reason=body.reason, amount=body.amount, tax_rate=body.tax_rate)
    outcome = credit_invoice(book.billing, invoice_id_of(book, invoice_id), terms, body.credit_id)
    response.headers["Location"] = f"/v1/invoices/{outcome.credit_note.id}"
    if not outcome.created:
        response.status_code = 200
    return credit_json(outcome)
