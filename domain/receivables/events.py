"""The receivables context's events (the Receivables aggregate's). Stored under
their frozen topics (`infrastructure/topics.py`), whatever module they live in."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from domain.receivables.allocation import (
    Allocation,
)
from domain.receivables.collection import (
    CollectionType,
    GatewayOutcome,
)
from domain.receivables.dunning import DunningAction
from domain.shared.model import DomainEvent


class AccountEvent(DomainEvent):
    """A receivables event that names its account itself (version 2). Events stored
    before version 2 lack the field: upcast to None, and the relay fills it from the
    aggregate's `ReceivablesOpened` (infrastructure/contract/facts.py)."""

    shared_base: ClassVar[bool] = True
    class_version: ClassVar[int] = 2
    account_id: str | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["account_id"] = None


class MoneyEvent(AccountEvent):
    """A receivables event with amounts, which also names their currency (version 2)."""

    shared_base: ClassVar[bool] = True
    currency: str | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["account_id"] = None
        state["currency"] = None


class ReceivablesOpened(DomainEvent):
    account_id: str
    currency: str


class PaymentTermsSet(DomainEvent):
    days: int | None
    """Net days for this account; None: the bill group's terms."""


class AutoPaySet(AccountEvent):
    token: str | None
    """The payment method's token at the gateway; None: auto-pay off."""


class InvoicePosted(MoneyEvent):
    invoice_id: UUID
    number: str
    issued_on: date
    due_on: date
    amount: Decimal
    allocations: tuple[Allocation, ...] = ()
    """A positive invoice: the account's credit balance applied to it at once. A
    negative one (credits above charges): its amount applied to the open invoices."""
    credit_change: Decimal = Decimal(0)
    """The change to the credit balance: minus what paid this invoice, or plus what
    a negative invoice left after the open invoices."""


class InvoiceWithdrawn(DomainEvent):
    """A posted invoice was rejected or cancelled: what was paid on it goes to the
    other open invoices, oldest first, and the rest to the credit balance. A
    negative invoice's withdrawal takes back what it gave: from the credit balance
    first, then from the invoices it paid (negative allocations, newest first)."""

    invoice_id: UUID
    reason: str
    allocations: tuple[Allocation, ...] = ()
    credit: Decimal
    """The change to the credit balance (negative when a negative invoice goes)."""


class PaymentReceived(MoneyEvent):
    payment_id: str
    amount: Decimal
    received_on: date
    method: str
    """`manual` (recorded by an operator), `collection` (collected by a run)."""
    reference: str | None
    allocations: tuple[Allocation, ...]
    credit: Decimal
    """What was left after the open invoices: added to the credit balance."""


class CreditNotePosted(MoneyEvent):
    credit_note_id: UUID
    number: str
    corrects: UUID
    amount: Decimal
    issued_on: date
    allocations: tuple[Allocation, ...]
    credit: Decimal


class DunningApplied(MoneyEvent):
    run_id: str
    invoice_id: UUID
    number: str
    rule: str
    stage: int
    actions: tuple[DunningAction, ...]
    days_overdue: int
    overdue_amount: Decimal
    fee: Decimal | None
    """The late fee, billed as a one-off charge on the account's next invoice."""
    template: str | None = None


class AccountSuspended(AccountEvent):
    run_id: str
    invoice_id: UUID
    stage: int
    reason: str


class AccountReinstated(AccountEvent):
    reason: str


class AccountSuspendedByOperator(AccountEvent):
    """An operator suspended the account (not dunning): only an operator's
    reactivation lifts it, never a payment."""

    reason: str


class DunningNoticeSent(DomainEvent):
    invoice_id: UUID
    stage: int
    channel: str
    recipient: str | None
    message_id: str
    location: str | None


class CollectionAttempted(MoneyEvent):
    """Recorded, and committed, before the gateway is called."""

    attempt_id: UUID
    run_id: str
    idempotency_key: str
    amount: Decimal
    number: int
    collection_type: CollectionType


class CollectionAnswered(AccountEvent):
    """The gateway's answer to an attempt (an approval also records the payment)."""

    attempt_id: UUID
    outcome: GatewayOutcome
    reference: str | None
    message: str | None
    retry_on: date | None = None
