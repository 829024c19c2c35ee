"""Allocation: money received applied to open invoices oldest first, and taken
back newest first; neither creates nor loses money (property-tested)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from domain.shared.errors import DomainError
from domain.shared.model import ValueObject


class ReceivablesError(DomainError):
    pass


class PaymentStatus(StrEnum):
    UNPAID = "unpaid"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    OVERDUE = "overdue"
    """Unpaid or partially paid after its due date (as of a given day)."""
    WITHDRAWN = "withdrawn"
    """Rejected or cancelled: never owed."""


class Allocation(ValueObject):
    """Part of an amount received, applied to one open invoice."""

    document_id: UUID
    amount: Decimal


@dataclass
class Item:
    """A posted document (an invoice, or a credit note's record) and what is paid."""

    document_id: UUID
    number: str
    issued_on: date
    due_on: date
    amount: Decimal
    allocated: Decimal
    withdrawn: bool = False
    dunning_stage: int = 0
    """The highest dunning stage applied to this invoice (0: none)."""

    @property
    def open_amount(self) -> Decimal:
        return Decimal(0) if self.withdrawn else self.amount - self.allocated

    def status(self, as_of: date | None = None) -> PaymentStatus:
        if self.withdrawn:
            return PaymentStatus.WITHDRAWN
        if self.open_amount <= 0:
            return PaymentStatus.PAID
        if as_of is not None and as_of > self.due_on:
            return PaymentStatus.OVERDUE
        return PaymentStatus.PARTIALLY_PAID if self.allocated > 0 else PaymentStatus.UNPAID

    def days_overdue(self, as_of: date) -> int:
        return max(0, (as_of - self.due_on).days)


def allocate(amount: Decimal, items: list[Item]) -> tuple[list[Allocation], Decimal]:
    """Apply `amount` to the open items oldest first (due date, issue date, number);
    returns the allocations and what is left over. Never more than an item's open
    amount; the allocations plus the remainder always equal `amount`."""
    if amount < 0:
        raise ReceivablesError(f"cannot allocate a negative amount ({amount})")
    left = amount
    allocations = []
    for item in sorted(items, key=lambda i: (i.due_on, i.issued_on, i.number)):
        if left <= 0:
            break
        take = min(left, item.open_amount)
        if take > 0:
            allocations.append(Allocation(document_id=item.document_id, amount=take))
            left -= take
    return allocations, left


def take_back(amount: Decimal, items: list[Item]) -> list[Allocation]:
    """Negative allocations taking `amount` back from paid items, newest first."""
    taken = []
    for item in sorted(items, key=lambda i: (i.due_on, i.issued_on, i.number), reverse=True):
        if amount <= 0:
            break
        take = min(amount, item.allocated)
        taken.append(Allocation(document_id=item.document_id, amount=-take))
        amount -= take
    if amount > 0:
        raise ReceivablesError(f"cannot take back {amount}: nothing paid holds it")
    return taken
