"""The Receivables' snapshot: its whole state at one version.

An account's receivables are loaded by every run that bills it, and gain an
event at every run (`InvoicePosted`) and with every payment, dunning stage and
collection attempt: from the snapshot the load reads one row and the few events
after it, whatever the history. The application decides when to take one
(`application/shared/snapshots.py`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from domain.receivables.allocation import Item
from domain.receivables.collection import CollectionAttempt
from domain.receivables.events import PaymentReceived
from domain.shared.model import AggregateSnapshot


class ReceivablesSnapshot(AggregateSnapshot):
    """Every attribute of `ReceivablesState`, typed as it is there."""

    created_on: datetime | None
    account_id: str
    currency: str
    payment_terms_days: int | None
    autopay_token: str | None
    items: dict[UUID, Item]
    credit_notes: dict[UUID, Item]
    credit: Decimal
    payments: dict[str, PaymentReceived]
    suspended: bool
    suspended_by: set[UUID]
    suspended_by_operator: bool = False
    """False in snapshots taken before an operator could suspend an account."""
    attempts: dict[UUID, CollectionAttempt]
    failed_attempts: list[CollectionAttempt]
    notices_sent: set[tuple[UUID, int]]
