"""The runs context's events: the BillRun's and the Schedule's
(`domain.runs.schedule`). Stored under their frozen topics
(`infrastructure/topics.py`), whatever module they live in."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from domain.billing.exchange_rates import RateSnapshot
from domain.runs.schedule_terms import ScheduleTerms
from domain.runs.settings import (
    CancelMode,
    RunOrigin,
    RunSettings,
    Selection,
)
from domain.runs.statistics import (
    BatchStatistics,
    CollectionStatistics,
    PreviewSummary,
    StepTimings,
)
from domain.shared.model import DomainEvent

# BillRun ----------------------------------------------------------------------


class RunEvent(DomainEvent):
    """A run event with a public form that names its run itself (version 2); the
    aggregate id is a one-way hash of it. Events stored before version 2 lack it:
    upcast to None, and the relay fills it from the aggregate's `RunScheduled`
    (infrastructure/contract/facts.py). The `BillRun` aggregate fills it."""

    shared_base: ClassVar[bool] = True
    class_version: ClassVar[int] = 2
    from_aggregate: ClassVar[tuple[str, ...]] = ("run_id",)
    run_id: str | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["run_id"] = None


class RunScheduled(DomainEvent):
    run_id: str
    period_start: date
    period_end: date
    posting_date: date
    selection: Selection
    settings: RunSettings = Field(default_factory=RunSettings)
    origin: RunOrigin | None = None
    """The schedule occurrence that queued the run; None: scheduled by hand."""


class RunDisabled(DomainEvent):
    """Managers skip the run until it is enabled again (docs/schedules.md)."""


class RunEnabled(DomainEvent):
    pass


class RunLeased(DomainEvent):
    """A manager claimed (or renewed its claim on) the run until `expires_at`; a
    lease that expires lets any other manager resume the run."""

    holder: str
    expires_at: datetime


class RunLeaseReleased(DomainEvent):
    holder: str


class RunStarted(RunEvent):
    log_position: int
    """Accounts opened at or before this notification id are in the run."""
    accounts_in_scope: int
    rates: RateSnapshot | None = None
    """The exchange rates the run converts with, fixed when it starts."""


class RunBatchCompleted(DomainEvent):
    batch: int
    cursor: int
    statistics: BatchStatistics
    first_invoice_number: int | None
    last_invoice_number: int | None
    timings: StepTimings | None = None


class RunClosingStarted(DomainEvent):
    """Every account is billed; the open invoices of `after_each_bill_run` groups
    are closed next, in batches of their own."""


class RunClosingBatchCompleted(DomainEvent):
    batch: int
    cursor: int
    statistics: BatchStatistics
    first_invoice_number: int | None
    last_invoice_number: int | None


class RunCollectionStarted(DomainEvent):
    """Billing (and closing) is done; payments are collected next, in batches."""


class RunCollectionBatchCompleted(DomainEvent):
    batch: int
    cursor: int
    statistics: CollectionStatistics
    collection_ms: int = 0


class RunFailed(RunEvent):
    """The run stopped on an error that is not one account's (those are parked)."""

    reason: str


class RunResumed(DomainEvent):
    """An operator executes a failed run again, after the fix."""


class RunPreviewed(DomainEvent):
    preview: PreviewSummary


class AccountParked(DomainEvent):
    """An account (with its family) could not be billed; the run went on without it."""

    account_id: str
    reason: str


class RunRatesAdded(DomainEvent):
    """Rates a retry read from the rate book for a parked account: pairs the run's
    snapshot lacked (in effect on its posting date). Pairs the run fixed when it
    started are never replaced, so what it billed is converted as it was."""

    account_id: str
    rates: dict[str, Decimal]


class ParkedAccountBilled(DomainEvent):
    """A parked account billed by `billrun run retry`, after the fix."""

    account_id: str
    statistics: BatchStatistics
    first_invoice_number: int | None
    last_invoice_number: int | None


class RunCancelled(RunEvent):
    mode: CancelMode
    reason: str
    invoices_cancelled: int


class RunValidated(RunEvent):
    invoices_approved: int


class RunFinalized(RunEvent):
    """Nothing more will change in the run."""


class RunDescribed(DomainEvent):
    description: str


class RunCompleted(RunEvent):
    batches: int
    statistics: BatchStatistics


# Schedule ---------------------------------------------------------------------


class ScheduleAdded(DomainEvent):
    name: str
    terms: ScheduleTerms


class ScheduleRemoved(DomainEvent):
    name: str
