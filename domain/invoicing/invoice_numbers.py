"""The invoice number sequence: the single source of invoice numbers."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.invoicing.documents import (
    DocumentType,
)
from domain.invoicing.events import InvoiceNumbersReserved
from domain.shared.errors import InvoiceError
from domain.shared.ids import INVOICE_NUMBER_SEQUENCE_ID
from domain.shared.model import Aggregate


class InvoiceNumberSequence(Aggregate):
    """The single source of invoice numbers.

    Numbers are reserved in the same transaction that closes the invoices
    using them, and every reservation extends this one aggregate, so its
    version check serialises them: numbers are unique, increase in close
    order, and a rolled-back or retried batch consumes none (no gaps).
    """

    kind = "sequence"

    def __init__(self, aggregate_id: UUID = INVOICE_NUMBER_SEQUENCE_ID) -> None:
        super().__init__(aggregate_id)
        self.last_number = 0

    def reserve(self, count: int, run_id: str, at: datetime) -> list[int]:
        if count < 0:
            raise InvoiceError(f"cannot reserve {count} invoice numbers")
        if count == 0:
            return []
        first = self.last_number + 1
        self._trigger(InvoiceNumbersReserved, at, run_id=run_id, first=first, count=count)
        return list(range(first, first + count))

    def _when_InvoiceNumbersReserved(self, event: InvoiceNumbersReserved) -> None:
        if event.first != self.last_number + 1:
            raise InvoiceError(
                f"reservation starting at {event.first} leaves a gap after {self.last_number}"
            )
        self.last_number = event.first + event.count - 1


def format_invoice_number(number: int) -> str:
    """How an invoice number is printed on documents."""
    return f"INV-{number:08d}"


def format_credit_note_number(number: int) -> str:
    """How a credit note number (its own sequence) is printed on documents."""
    return f"CN-{number:08d}"


def format_document_number(number: int, document_type: DocumentType | str) -> str:
    if document_type == DocumentType.CREDIT_NOTE:
        return format_credit_note_number(number)
    return format_invoice_number(number)


DOCUMENT_PREFIXES = {"INV-": DocumentType.INVOICE, "CN-": DocumentType.CREDIT_NOTE}
"""The printed numbers' prefixes, for reading a number back."""
