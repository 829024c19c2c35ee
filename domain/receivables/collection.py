"""Collection: how a run collects (its collection type), what a payment gateway
answers, and one attempt with its idempotency key and retry date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from uuid import UUID, uuid5

from domain.shared.ids import NAMESPACE
from domain.shared.model import ValueObject

COLLECTION_RETRY_DAYS = (1, 3, 7)
"""After a failed collection attempt, the next is made this many days later (the
first retry 1 day after, ...); after the last, collection stops until a payment
or a new invoice."""


def collection_attempt_uuid(account_id: str, run_id: str) -> UUID:
    """One collection attempt per account and run: a repeated run finds it."""
    return uuid5(NAMESPACE, f"collection:{account_id}:{run_id}")


class CollectionType(StrEnum):
    """How a run collects from auto-pay accounts (the seed's collection types)."""

    ACCOUNT_BALANCE = "account_balance"
    """Collect the whole balance when it is positive."""
    INVOICE_DUE_DATE = "invoice_due_date"
    """Collect the open amount of the invoices that are due."""


class GatewayOutcome(StrEnum):
    """What a payment gateway answered to a charge (application.shared.ports.PaymentGateway)."""

    APPROVED = "approved"
    DECLINED = "declined"
    ERROR = "error"
    """The gateway failed before charging: safe to retry with the same key."""
    TIMEOUT = "timeout"
    """No answer: the charge may or may not have happened. Never guessed: the
    attempt stays pending until the gateway says what happened."""


class GatewayAnswer(ValueObject):
    """A payment gateway's answer to a charge or a look-up."""

    outcome: GatewayOutcome
    reference: str | None = None
    """The gateway's id of the charge."""
    message: str | None = None
    charged_on: date | None = None
    """The day the gateway took the money (approved answers), when it says: what a
    payment found later by reconciling is dated, not the day it was found."""


@dataclass
class CollectionAttempt:
    attempt_id: UUID
    run_id: str
    idempotency_key: str
    amount: Decimal
    number: int
    """1 for a first attempt, 2 for its first retry, ..."""
    outcome: GatewayOutcome | None = None
    """None: recorded, the gateway's answer not yet (a crash, or before the call)."""
    reference: str | None = None
    message: str | None = None
    retry_on: date | None = None

    @property
    def pending(self) -> bool:
        """Not known to have failed or succeeded: reconcile before anything else."""
        return self.outcome is None or self.outcome is GatewayOutcome.TIMEOUT
