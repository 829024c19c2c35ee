"""Invoicing: invoices and credit notes (one `Invoice` aggregate each), public form.

Every body names the document: `invoice_id`, `document_type` (`invoice` or
`credit_note`), `number` as printed (`INV-00000001`, `CN-00000001`; null before
it is closed), `account_id`, and `run_id` only when a bill run made the document:
a credit note is an operator's act, so it and everything that happens to it
carry `run_id: null`, and `InvoiceCredited` (on the invoice it corrects) too.

Stored events after `InvoiceOpened` name their document themselves from class
version 2 on (account, document type, number; `InvoiceCredited` the currency,
`InvoiceReleased` the run that made the invoice, a credit note's `InvoiceClosed`
the number it corrects). Those stored before come back without them, and get
them from the aggregate's facts (its `InvoiceOpened` and `InvoiceClosed`).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from infrastructure.contract.base import (
    Amount,
    Currency,
    Facts,
    PublicEvent,
    PublicForm,
    document_number,
    plain,
)

DocumentType = Literal["invoice", "credit_note"]


class InvoiceEvent(PublicEvent):
    invoice_id: str
    """The document's id (a UUID): the key to use for upserts."""
    document_type: DocumentType
    number: str | None
    """As printed: `INV-00000001` or `CN-00000001`; null until the document is closed."""
    account_id: str
    run_id: str | None
    """The bill run that made this invoice; null for credit notes (an operator's act)."""


class InvoiceOpenedV1(InvoiceEvent):
    """A draft invoice or credit note was opened for an account."""

    ce_type = "billrun.invoice.opened.v1"
    currency: Currency
    posting_date: date
    corrects_invoice_id: str | None = None
    """For a credit note: the invoice it corrects."""


class InvoiceClosedV1(InvoiceEvent):
    """An invoice or credit note was closed: numbered and totalled, ready to render."""

    ce_type = "billrun.invoice.closed.v1"
    currency: Currency
    subtotal: Amount
    tax: Amount
    total: Amount
    line_count: int
    posting_date: date | None
    due_date: date | None
    released: bool
    """False while held until its invoicer's bill day (InvoiceReleased follows)."""
    corrects_number: str | None = None
    """For a credit note: the number of the invoice it corrects."""


class InvoiceReleasedV1(InvoiceEvent):
    """A held invoice was released on its invoicer's bill day."""

    ce_type = "billrun.invoice.released.v1"


class InvoiceRenderedV1(InvoiceEvent):
    """A document of the invoice was rendered and stored (no host path: ask billrun
    for the document by invoice id and format)."""

    ce_type = "billrun.invoice.rendered.v1"
    format: str
    """`pdf`, `ubl` ..."""
    sha256: str
    size: int


class InvoiceDeliveredV1(InvoiceEvent):
    """The invoice went out by its bill group's channel (no recipient address, no
    host path)."""

    ce_type = "billrun.invoice.delivered.v1"
    channel: str
    """`email`, `file` or `none`."""


class InvoiceReviewedV1(InvoiceEvent):
    """Base of the review decisions (not published itself)."""

    reason: str | None
    """The operator's or rule's free-text reason."""


class InvoiceApprovedV1(InvoiceReviewedV1):
    """The invoice was approved for delivery."""

    ce_type = "billrun.invoice.approved.v1"


class InvoiceQuarantinedV1(InvoiceReviewedV1):
    """The invoice was held for review (by a rule or an operator)."""

    ce_type = "billrun.invoice.quarantined.v1"
    rule: str | None


class InvoiceReleasedFromQuarantineV1(InvoiceReviewedV1):
    """A quarantined invoice was released for delivery."""

    ce_type = "billrun.invoice.released_from_quarantine.v1"


class InvoiceRejectedV1(InvoiceReviewedV1):
    """The invoice was rejected: it will not be delivered."""

    ce_type = "billrun.invoice.rejected.v1"
    rule: str | None


class InvoiceCancelledV1(InvoiceReviewedV1):
    """The invoice was cancelled."""

    ce_type = "billrun.invoice.cancelled.v1"


class InvoiceCreditedV1(InvoiceEvent):
    """A credit note was issued against this invoice (by an operator: `run_id` is null)."""

    ce_type = "billrun.invoice.credited.v1"
    credit_note_id: str
    credit_note_number: str
    currency: Currency
    total: Amount
    """The credit note's total (negative)."""
    reason: str


def opened_facts(payload: dict[str, Any]) -> Facts:
    document_type = payload.get("document_type") or "invoice"
    corrects = payload.get("corrects_number")
    return {
        "account_id": payload["account_id"],
        "currency": payload["currency"],
        "document_type": document_type,
        "run_id": payload["run_id"] if document_type == "invoice" else None,
        "corrects_invoice_id": payload.get("corrects"),
        "corrects_number": document_number(corrects, "invoice") if corrects else None,
    }


def closed_facts(payload: dict[str, Any]) -> Facts:
    document_type = payload.get("document_type") or "invoice"
    return {"number": document_number(payload["number"], document_type)}


def _names(
    p: dict[str, Any],
    document_type: str,
    number: str | None,
    account: str | None,
    run: str | None,
) -> dict[str, Any]:
    """The fields every invoice body starts with, in their published order."""
    return {
        "invoice_id": p["originator_id"],
        "document_type": document_type,
        "number": number,
        "account_id": account,
        "run_id": run,
    }


def _document(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    if p.get("account_id") is None:  # stored before class version 2: the facts name it
        return _names(
            p, f.get("document_type", "invoice"), f.get("number"), f.get("account_id"),
            f.get("run_id"),
        )  # fmt: skip
    document_type = p["document_type"]
    # The run that made the invoice (`InvoiceReleased.run_id` is the releasing one);
    # a credit note is an operator's act.
    run_id = p.get("opened_by_run", p["run_id"]) if document_type == "invoice" else None
    number = document_number(p["number"], document_type)
    return _names(p, document_type, number, p["account_id"], run_id)


def _opened(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    f = {**f, **opened_facts(p)}
    return {
        **_names(p, f["document_type"], f.get("number"), f["account_id"], f["run_id"]),
        "currency": f["currency"],
        "posting_date": p["posting_date"],
        "corrects_invoice_id": f["corrects_invoice_id"],
    }


def _closed(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    document_type = p.get("document_type") or f.get("document_type", "invoice")
    number = document_number(p["number"], document_type)
    # The run that closed it is the run its statistics count it in.
    run_id = (p.get("closed_by_run") or p["run_id"]) if document_type == "invoice" else None
    corrects = p.get("corrects_number")  # class version 2; else the facts'
    return {
        **_names(p, document_type, number, p["account_id"], run_id),
        "currency": p["currency"],
        "subtotal": plain(p["subtotal"]),
        "tax": plain(p["tax"]),
        "total": plain(p["total"]),
        "line_count": p["line_count"],
        "posting_date": p.get("posting_date"),
        "due_date": p.get("due_date"),
        "released": p.get("released", True),
        "corrects_number": document_number(corrects, "invoice")
        if corrects
        else f.get("corrects_number"),
    }


def _rendered(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_document(p, f), "format": p["format"], "sha256": p["sha256"], "size": p["size"]}


def _delivered(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_document(p, f), "channel": p["channel"]}


def _reviewed(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_document(p, f), "reason": p.get("reason")}


def _ruled(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_reviewed(p, f), "rule": p.get("rule")}


def _credited(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_document(p, f),
        "run_id": None,
        "credit_note_id": p["credit_note_id"],
        "credit_note_number": document_number(p["credit_note_number"], "credit_note"),
        "currency": p.get("currency") or f.get("currency"),
        "total": plain(p["total"]),
        "reason": p["reason"],
    }


FORMS = (
    PublicForm("InvoiceOpened", InvoiceOpenedV1, _opened, "invoice_id"),
    PublicForm("InvoiceClosed", InvoiceClosedV1, _closed, "invoice_id"),
    PublicForm("InvoiceReleased", InvoiceReleasedV1, _document, "invoice_id"),
    PublicForm("InvoiceRendered", InvoiceRenderedV1, _rendered, "invoice_id"),
    PublicForm("InvoiceDelivered", InvoiceDeliveredV1, _delivered, "invoice_id"),
    PublicForm("InvoiceApproved", InvoiceApprovedV1, _reviewed, "invoice_id"),
    PublicForm("InvoiceQuarantined", InvoiceQuarantinedV1, _ruled, "invoice_id"),
    PublicForm(
        "InvoiceReleasedFromQuarantine", InvoiceReleasedFromQuarantineV1, _reviewed, "invoice_id"
    ),
    PublicForm("InvoiceRejected", InvoiceRejectedV1, _ruled, "invoice_id"),
    PublicForm("InvoiceCancelled", InvoiceCancelledV1, _reviewed, "invoice_id"),
    PublicForm("InvoiceCredited", InvoiceCreditedV1, _credited, "invoice_id"),
)

OPENERS = {"InvoiceOpened": opened_facts, "InvoiceClosed": closed_facts}
"""Stored events whose fields become the aggregate's facts for later events."""

SELF_CONTAINED_FROM_V2 = frozenset(form.stored for form in FORMS) - {"InvoiceOpened"}
"""Stored as class version 2 or later, these name their document themselves
(`InvoiceOpened` always did)."""
