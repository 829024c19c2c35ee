"""The Invoice aggregate and the invoice number sequence."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from domain.errors import InvoiceError
from domain.ids import invoice_uuid
from domain.lines import InvoiceLine
from domain.model import Aggregate, DomainEvent, ValueObject
from domain.money import is_currency, round_to_currency


class InvoiceStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class InvoiceOpened(DomainEvent):
    run_id: str
    account_id: str
    currency: str
    posting_date: date


class InvoiceLineAdded(DomainEvent):
    run_id: str
    line: InvoiceLine


class InvoiceClosed(DomainEvent):
    run_id: str
    account_id: str
    currency: str
    number: int
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    line_count: int
    closed_by_run: str | None = None
    """The run that closed it, when not the run that opened it (close types)."""
    released: bool = True
    """Rendered and delivered now (the run reached the invoicer's bill day); a held
    invoice waits for `InvoiceReleased` from a later run that reaches it."""


class InvoiceReleased(DomainEvent):
    """A held invoice is released for rendering and delivery by a later run."""

    run_id: str


class InvoiceRendered(DomainEvent):
    """A document of the closed invoice was rendered and stored (named by its hash)."""

    run_id: str
    format: str
    sha256: str
    location: str
    size: int


class InvoiceDelivered(DomainEvent):
    """The invoice went out by its bill group's channel (`email`, `file` or `none`)."""

    run_id: str
    channel: str
    recipient: str | None
    message_id: str
    location: str | None


class RenderedDocument(ValueObject):
    format: str
    sha256: str
    location: str
    size: int


class Delivery(ValueObject):
    channel: str
    recipient: str | None
    message_id: str
    location: str | None
    delivered_at: datetime


def format_invoice_number(number: int) -> str:
    """How an invoice number is printed on documents."""
    return f"INV-{number:08d}"


class Invoice(Aggregate):
    kind = "invoice"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.run_id = ""
        self.account_id = ""
        self.currency = ""
        self.posting_date: date | None = None
        self.status = InvoiceStatus.OPEN
        self.lines: list[InvoiceLine] = []
        self.documents: dict[str, RenderedDocument] = {}
        self.delivery: Delivery | None = None
        self.number: int | None = None
        self.subtotal = Decimal(0)
        self.tax = Decimal(0)
        self.total = Decimal(0)
        self.closed_by_run: str | None = None
        self.released = False
        self.released_by_run: str | None = None
        """The run whose settings govern rendering and delivery: the closing run, or
        the later run that released a held invoice."""

    @classmethod
    def open(
        cls, run_id: str, account_id: str, currency: str, posting_date: date, at: datetime
    ) -> Invoice:
        if not is_currency(currency):
            raise InvoiceError(f"invoice of {account_id}: unknown currency {currency!r}")
        invoice = cls(invoice_uuid(run_id, account_id))
        invoice._trigger(
            InvoiceOpened,
            at,
            run_id=run_id,
            account_id=account_id,
            currency=currency,
            posting_date=posting_date,
        )
        return invoice

    def add_line(self, line: InvoiceLine, at: datetime) -> None:
        if self.status is not InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is {self.status.value}: lines cannot be added")
        if line.currency != self.currency:
            raise InvoiceError(
                f"invoice {self.id} is in {self.currency}; "
                f"line {line.line_id} is in {line.currency}"
            )
        if any(existing.line_id == line.line_id for existing in self.lines):
            raise InvoiceError(f"invoice {self.id} already has line {line.line_id}")
        # Totals are exact sums of lines, so each line must already be rounded.
        for name, value in (("amount", line.amount), ("tax", line.tax)):
            if value != round_to_currency(value, self.currency):
                raise InvoiceError(
                    f"line {line.line_id}: {name} {value} has more decimals than "
                    f"{self.currency} allows"
                )
        self._trigger(InvoiceLineAdded, at, run_id=self.run_id, line=line)

    def close(
        self, number: int, at: datetime, run_id: str | None = None, release: bool = True
    ) -> None:
        """Close with `number`; `run_id` is the closing run (default: the opening
        one), `release` False holds rendering and delivery for a later run."""
        if self.status is not InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is already {self.status.value}")
        if number < 1:
            raise InvoiceError(f"invoice numbers start at 1, not {number}")
        zero = round_to_currency(Decimal(0), self.currency)
        subtotal = sum((line.amount for line in self.lines), zero)
        tax = sum((line.tax for line in self.lines), zero)
        self._trigger(
            InvoiceClosed,
            at,
            run_id=self.run_id,
            account_id=self.account_id,
            currency=self.currency,
            number=number,
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            line_count=len(self.lines),
            closed_by_run=None if run_id in (None, self.run_id) else run_id,
            released=release,
        )

    def release(self, run_id: str, at: datetime) -> bool:
        """Release a held invoice for rendering and delivery; False if it was already."""
        if self.status is InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is open: only closed invoices are released")
        if self.released:
            return False
        self._trigger(InvoiceReleased, at, run_id=run_id)
        return True

    def record_rendering(
        self, document_format: str, sha256: str, location: str, size: int, at: datetime
    ) -> bool:
        """Record a rendered document; rendering a format twice records nothing (False).

        Renderers may not be byte-for-byte reproducible (a PDF carries its creation
        time), so the first document of each format is the invoice's document.
        """
        if self.status is InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is open: only closed invoices are rendered")
        if document_format in self.documents:
            return False
        self._trigger(
            InvoiceRendered,
            at,
            run_id=self.run_id,
            format=document_format,
            sha256=sha256,
            location=location,
            size=size,
        )
        return True

    def record_delivery(
        self,
        channel: str,
        recipient: str | None,
        message_id: str,
        location: str | None,
        at: datetime,
    ) -> bool:
        """Record that the invoice went out; a second delivery records nothing (False)."""
        if self.status is InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is open: only closed invoices are delivered")
        if self.delivery is not None:
            return False
        if channel != "none" and "pdf" not in self.documents:
            raise InvoiceError(f"invoice {self.id} has no PDF yet: render it before delivery")
        self._trigger(
            InvoiceDelivered,
            at,
            run_id=self.run_id,
            channel=channel,
            recipient=recipient,
            message_id=message_id,
            location=location,
        )
        return True

    @property
    def is_closed(self) -> bool:
        return self.status is InvoiceStatus.CLOSED

    @property
    def display_number(self) -> str | None:
        return None if self.number is None else format_invoice_number(self.number)

    def _when_InvoiceOpened(self, event: InvoiceOpened) -> None:
        self.run_id = event.run_id
        self.account_id = event.account_id
        self.currency = event.currency
        self.posting_date = event.posting_date
        # Running totals are shown at the currency's minor unit ("0.00", not "0").
        self.subtotal = self.tax = self.total = round_to_currency(Decimal(0), event.currency)

    def _when_InvoiceLineAdded(self, event: InvoiceLineAdded) -> None:
        self.lines.append(event.line)
        self.subtotal += event.line.amount
        self.tax += event.line.tax
        self.total = self.subtotal + self.tax

    def _when_InvoiceRendered(self, event: InvoiceRendered) -> None:
        self.documents[event.format] = RenderedDocument(
            format=event.format, sha256=event.sha256, location=event.location, size=event.size
        )

    def _when_InvoiceDelivered(self, event: InvoiceDelivered) -> None:
        self.delivery = Delivery(
            channel=event.channel,
            recipient=event.recipient,
            message_id=event.message_id,
            location=event.location,
            delivered_at=event.timestamp,
        )

    def _when_InvoiceReleased(self, event: InvoiceReleased) -> None:
        self.released = True
        self.released_by_run = event.run_id

    def _when_InvoiceClosed(self, event: InvoiceClosed) -> None:
        self.status = InvoiceStatus.CLOSED
        self.closed_by_run = event.closed_by_run or self.run_id
        self.released = event.released
        self.released_by_run = self.closed_by_run if event.released else None
        self.number = event.number
        self.subtotal = event.subtotal
        self.tax = event.tax
        self.total = event.total
