"""The invoice number sequence: the single source of invoice numbers."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.shared.errors import InvoiceError
from domain.shared.ids import INVOICE_NUMBER_SEQUENCE_ID
from domain.shared.model import Aggregate, DomainEvent


class InvoiceNumbersReserved(DomainEvent):
    run_id: str
    first: int
    count: int


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
