"""What a run is: its status and phases, the accounts it selects and the settings
that say which steps it performs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from domain.billing.terms import BillingScope
from domain.receivables.collection import CollectionType
from domain.shared.model import ValueObject


class RunStatus(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    """Stopped by an error that is not an account's own (those are parked): managers
    leave it alone; `billrun run execute` resumes it after the fix."""


class WorkflowState(StrEnum):
    """The run as an operator moves it along (Opencell's workflow states)."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    DRAFTS_READY = "drafts_ready"
    """Billed: its invoices are drafts, to review."""
    VALIDATED = "validated"
    """Every invoice reviewed (approved, rejected or cancelled)."""
    COMPLETED = "completed"
    """Closed for good: nothing more happens to it."""
    CANCELLED = "cancelled"
    FAILED = "failed"


class CancelMode(StrEnum):
    REOPEN = "reopen"
    """What the run billed is unbilled again: a later run bills it."""
    DISCARD = "discard"
    """What the run billed is written off: nothing bills it again."""


class RunPhase(StrEnum):
    BILLING = "billing"
    CLOSING = "closing"
    """Closing the open invoices of `after_each_bill_run` groups, once all are billed."""
    COLLECTING = "collecting"
    """Collecting payments from auto-pay accounts, last (seed order)."""


class Selection(ValueObject):
    """Which accounts a run bills: named accounts, bill groups, or (both empty) all."""

    accounts: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def is_all(self) -> bool:
        return not self.accounts and not self.groups

    def includes(self, account_id: str, bill_group: str) -> bool:
        return self.is_all or account_id in self.accounts or bill_group in self.groups

    def describe(self) -> str:
        if self.is_all:
            return "all accounts"
        parts = []
        if self.accounts:
            parts.append("accounts " + ", ".join(self.accounts))
        if self.groups:
            parts.append("groups " + ", ".join(self.groups))
        return "; ".join(parts)


class RunSettings(ValueObject):
    """Which of the run's optional steps it performs."""

    bill_packages: bool = True
    """Bill the package periods whose bill date falls in the period."""
    bill_usage: bool = True
    """Bill the unbilled usage of the packages due in the period (seed rule)."""
    bill_charges: bool = True
    """Bill the one-off charges dated on or before the period's end."""
    run_contracts: bool = True
    """Apply contract penalties (early-termination fees, commitment shortfalls) due
    by the period's end, whatever period they relate to (domain.billing.contracts)."""
    run_invoices: bool = True
    """Close and number invoices (by the bill group's close type); off, billed lines
    wait on open invoices for a run that invoices."""
    categories: tuple[str, ...] = ()
    """Only packages and charges of these categories; empty: every category."""
    catch_up: bool = False
    """Also bill stranded package bill dates: before the period and never billed
    (no run covered them), each period its own line. Off (and in runs scheduled
    before the setting existed), they stay owed and are reported."""

    render_invoices: bool = True
    """Render each closed invoice to PDF and XML (the render consumer)."""
    deliver_invoices: bool = True
    """Deliver each rendered invoice by its bill group's channel (the deliver consumer)."""
    approval_required: bool = False
    """Deliver an invoice only once an operator has approved it (the essensys flow);
    off, a draft goes out as soon as it is rendered (the LogiSense flow)."""
    run_dunning: bool = False
    """AR terms first (seed order): apply the bill group's dunning rules to each
    selected account's overdue invoices, as of the posting date."""
    collect_payments: bool = False
    """Last: collect from accounts on auto-pay, by `collection_type`."""
    collection_type: CollectionType = CollectionType.ACCOUNT_BALANCE

    @property
    def scope(self) -> BillingScope:
        return BillingScope(
            packages=self.bill_packages,
            usage=self.bill_usage,
            charges=self.bill_charges,
            contracts=self.run_contracts,
            categories=self.categories,
            catch_up=self.catch_up,
        )


class RunOrigin(ValueObject):
    """The schedule occurrence that queued a run (docs/schedules.md)."""

    schedule: str
    occurrence: datetime
