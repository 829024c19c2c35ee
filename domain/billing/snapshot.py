"""The Account's snapshot: its whole state at one version.

An account is loaded at every run that bills it, and its events grow with
every run (each billing, each usage record, each charge): from the snapshot
the load reads one row and the few events after it, whatever the history. The
application decides when to take one (`application/shared/snapshots.py`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from domain.billing.buyer import BuyerDetails
from domain.billing.contracts import BilledItem
from domain.billing.state import Charge, Contract, Package, RunBilling
from domain.billing.terms import UsageRecord
from domain.shared.model import AggregateSnapshot


class AccountSnapshot(AggregateSnapshot):
    """Every attribute of `AccountState`, typed as it is there."""

    created_on: datetime | None
    account_id: str
    name: str
    currency: str
    invoice_email: str | None
    bill_group: str
    tax_rate: Decimal
    packages: dict[str, Package]
    usage: dict[str, UsageRecord]
    charges: dict[str, Charge]
    contracts: dict[str, Contract]
    billed: list[BilledItem]
    bill_day: int | None
    open_invoice: UUID | None
    zero_invoiced_through: date | None
    last_posting_date: date | None
    held_invoices: list[UUID]
    runs: dict[str, RunBilling]
    invoicer: str | None
    members: list[str]
    buyer: BuyerDetails
