"""The JSON of invoices, their review, credit notes, documents and history lines:
what `billrun invoice|history ... --json` prints and what the HTTP API answers
for the same thing (one serializer; `entrypoints/representations.py` holds
accounts, usage, charges and payments).

Money is a decimal string in the invoice's currency, dates ISO 8601.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from application.invoicing.credit_notes import CreditOutcome
from application.invoicing.review import ReviewOutcome
from application.shared.history import HistoryEntry
from domain.invoicing.documents import RenderedDocument
from domain.invoicing.invoice import Invoice
from domain.invoicing.invoice_numbers import format_credit_note_number, format_invoice_number
from entrypoints.presenters import payment_json
from projections.invoices import InvoiceRow
from projections.receivables import ItemRow


def invoice_show_json(invoice: Invoice, posted: ItemRow | None, today: date) -> dict[str, Any]:
    """`invoice show --json`: the invoice from its events, with its payment status."""
    payment = payment_json(posted, today)
    payment.pop("due_date")  # the invoice's own (set when it closed)
    return {**invoice_json(invoice), **payment}


def invoice_row_json(row: InvoiceRow, posted: ItemRow | None, today: date) -> dict[str, Any]:
    """`invoice list --json`: an invoice of the read model, with its payment status."""
    return {**row.as_json(), **payment_json(posted, today)}


def credits_json(invoice: Invoice) -> dict[str, Any]:
    return {
        "document_type": invoice.document_type.value,
        "corrects": None if invoice.corrects is None else str(invoice.corrects),
        "corrects_number": (
            None
            if invoice.corrects_number is None
            else format_invoice_number(invoice.corrects_number)
        ),
        "credit_reason": invoice.credit_reason,
        "credits": [
            {
                "credit_note_id": str(c.credit_note_id),
                "credit_note": format_credit_note_number(c.credit_note_number),
                "amount": str(c.total),
                "reason": c.reason,
            }
            for c in invoice.credits.values()
        ],
        "creditable": None if invoice.is_credit_note else str(invoice.creditable_total),
    }


def invoice_json(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": str(invoice.id),
        "number": invoice.number,
        "display_number": invoice.display_number,
        **credits_json(invoice),
        "account": invoice.account_id,
        "currency": invoice.currency,
        "status": invoice.status.value,
        "run_id": invoice.run_id,
        "posting_date": invoice.posting_date.isoformat() if invoice.posting_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "subtotal": str(invoice.subtotal),
        "tax": str(invoice.tax),
        "total": str(invoice.total),
        "review_status": invoice.review_status.value if invoice.review_status else None,
        "review_reason": invoice.review_reason,
        "review_rule": invoice.review_rule,
        "verdicts": [verdict.model_dump(mode="json") for verdict in invoice.verdicts],
        "version": invoice.version,
        "lines": [line.model_dump(mode="json") for line in invoice.lines],
    }


def review_json(outcome: ReviewOutcome) -> dict[str, Any]:
    return {
        "action": outcome.action.value,
        "changed": len(outcome.changed),
        "unchanged": len(outcome.unchanged),
        "refused": len(outcome.refused),
        "invoices": [
            {
                "id": str(result.invoice_id),
                "invoice": result.invoice,
                "result": result.kind.value,
                "review_status": result.review_status,
                "reason": result.reason,
            }
            for result in outcome.results
        ],
    }


def credit_json(outcome: CreditOutcome) -> dict[str, Any]:
    receivables = outcome.receivables
    return {
        "created": outcome.created,
        "credit_note": invoice_json(outcome.credit_note),
        "invoice": outcome.invoice.name,
        "invoice_id": str(outcome.invoice.id),
        "amount": str(outcome.amount),
        "creditable": str(outcome.invoice.creditable_total),
        "balance": None if receivables is None else str(receivables.balance),
        "credit_balance": None if receivables is None else str(receivables.credit),
    }


def document_json(
    invoice_id: UUID, number: str, account: str, document: RenderedDocument, path: Path | None
) -> dict[str, Any]:
    """A rendered document: where it is (`path`: the file on this host, None over
    HTTP, which gives a download URL instead) and what it holds."""
    return {
        "invoice_id": str(invoice_id),
        "number": number,
        "account": account,
        "format": document.format,
        "sha256": document.sha256,
        "size": document.size,
        "location": document.location,
        "path": None if path is None else str(path),
    }


def history_line(entry: HistoryEntry) -> str:
    """One event as a line of `billrun history --jsonl` (and of the API's stream)."""
    return json.dumps(entry.as_json(), separators=(",", ":")) + "\n"
