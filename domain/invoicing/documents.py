"""What an invoice is and what became of it: its status, its document type
(invoice or credit note), the amounts a credit note took off it, its rendered
documents and deliveries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from domain.shared.model import ValueObject


class InvoiceStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class DocumentType(StrEnum):
    """What an Invoice aggregate is: an invoice, or a credit note correcting one."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class CreditedAmount(ValueObject):
    """What a credit note took off an invoice at one tax rate: net and tax, positive
    for a credit (the credit note's lines, negated)."""

    tax_rate: Decimal
    amount: Decimal
    tax: Decimal


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
