"""The BillRun aggregate: one bill period billed for a selection of accounts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from domain.account import BillingScope
from domain.errors import BillRunError, RunNotRunnable, StaleCheckpoint
from domain.exchange_rates import RateSnapshot
from domain.ids import run_uuid
from domain.model import Aggregate, DomainEvent, ValueObject
from domain.periods import Period


class RunStatus(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"


class RunPhase(StrEnum):
    BILLING = "billing"
    CLOSING = "closing"
    """Closing the open invoices of `after_each_bill_run` groups, once all are billed."""


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
    by the period's end, whatever period they relate to (domain.contracts)."""
    categories: tuple[str, ...] = ()
    """Only packages and charges of these categories; empty: every category."""

    render_invoices: bool = True
    """Render each closed invoice to PDF and XML (the render consumer)."""
    deliver_invoices: bool = True
    """Deliver each rendered invoice by its bill group's channel (the deliver consumer)."""

    @property
    def scope(self) -> BillingScope:
        return BillingScope(
            packages=self.bill_packages,
            usage=self.bill_usage,
            charges=self.bill_charges,
            contracts=self.run_contracts,
            categories=self.categories,
        )


class BatchStatistics(ValueObject):
    """What one batch (or, summed, the whole run) produced."""

    accounts_scanned: int = 0
    accounts_seen: int = 0
    accounts_billed: int = 0
    accounts_skipped: int = 0
    invoices: int = 0
    """Invoices closed (and numbered)."""
    lines: int = 0
    totals: dict[str, Decimal] = Field(default_factory=dict)
    """Closed invoices' subtotals, per currency."""
    invoices_left_open: int = 0
    """Invoices that received lines or were opened and stay open (close types)."""
    invoices_released: int = 0
    """Held invoices of earlier runs released for rendering and delivery."""

    def plus(self, other: BatchStatistics) -> BatchStatistics:
        totals = dict(self.totals)
        for currency, amount in other.totals.items():
            totals[currency] = totals.get(currency, Decimal(0)) + amount
        return BatchStatistics(
            accounts_scanned=self.accounts_scanned + other.accounts_scanned,
            accounts_seen=self.accounts_seen + other.accounts_seen,
            accounts_billed=self.accounts_billed + other.accounts_billed,
            accounts_skipped=self.accounts_skipped + other.accounts_skipped,
            invoices=self.invoices + other.invoices,
            lines=self.lines + other.lines,
            totals=dict(sorted(totals.items())),
            invoices_left_open=self.invoices_left_open + other.invoices_left_open,
            invoices_released=self.invoices_released + other.invoices_released,
        )


class RunScheduled(DomainEvent):
    run_id: str
    period_start: date
    period_end: date
    posting_date: date
    selection: Selection
    settings: RunSettings = Field(default_factory=RunSettings)


class RunStarted(DomainEvent):
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


class RunClosingStarted(DomainEvent):
    """Every account is billed; the open invoices of `after_each_bill_run` groups
    are closed next, in batches of their own."""


class RunClosingBatchCompleted(DomainEvent):
    batch: int
    cursor: int
    statistics: BatchStatistics
    first_invoice_number: int | None
    last_invoice_number: int | None


class RunCompleted(DomainEvent):
    batches: int
    statistics: BatchStatistics


class BillRun(Aggregate):
    kind = "billrun"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.run_id = ""
        self.period = Period(date.min, date.min)
        self.posting_date = date.min
        self.selection = Selection()
        self.settings = RunSettings()
        self.status = RunStatus.SCHEDULED
        self.log_position = 0
        self.accounts_in_scope = 0
        self.rates = RateSnapshot(on=date.min)
        self.cursor = 0
        self.batches = 0
        self.phase = RunPhase.BILLING
        self.closing_cursor = 0
        self.closing_batches = 0
        self.statistics = BatchStatistics()
        self.scheduled_at: datetime | None = None
        self.started_at: datetime | None = None
        self.completed_at: datetime | None = None

    @classmethod
    def schedule(
        cls,
        run_id: str,
        period: Period,
        posting_date: date | None,
        selection: Selection,
        at: datetime,
        settings: RunSettings | None = None,
    ) -> BillRun:
        if not run_id.strip():
            raise BillRunError("a bill run needs a non-empty id")
        run = cls(run_uuid(run_id))
        run._trigger(
            RunScheduled,
            at,
            run_id=run_id,
            period_start=period.start,
            period_end=period.end,
            posting_date=posting_date or period.end,
            selection=selection,
            settings=settings or RunSettings(),
        )
        return run

    @property
    def is_scheduled(self) -> bool:
        return self.status is RunStatus.SCHEDULED

    @property
    def is_completed(self) -> bool:
        return self.status is RunStatus.COMPLETED

    def same_terms(
        self,
        period: Period,
        posting_date: date | None,
        selection: Selection,
        settings: RunSettings | None = None,
    ) -> bool:
        return (
            self.period == period
            and self.posting_date == (posting_date or period.end)
            and self.selection == selection
            and self.settings == (settings or RunSettings())
        )

    def start(
        self,
        log_position: int,
        accounts_in_scope: int,
        at: datetime,
        rates: RateSnapshot | None = None,
    ) -> None:
        if self.status is not RunStatus.SCHEDULED:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not scheduled")
        self._trigger(
            RunStarted,
            at,
            log_position=log_position,
            accounts_in_scope=accounts_in_scope,
            rates=rates,
        )

    def complete_batch(
        self,
        batch: int,
        cursor: int,
        statistics: BatchStatistics,
        invoice_numbers: list[int],
        at: datetime,
    ) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not running")
        self._checkpoint(RunBatchCompleted, (self.batches, self.cursor), batch, cursor,
                         statistics, invoice_numbers, at)  # fmt: skip

    def _checkpoint(
        self,
        event_class: type[RunBatchCompleted | RunClosingBatchCompleted],
        previous: tuple[int, int],
        batch: int,
        cursor: int,
        statistics: BatchStatistics,
        invoice_numbers: list[int],
        at: datetime,
    ) -> None:
        """A batch's checkpoint, which must follow the `previous` (batch, cursor): a
        batch computed from a checkpoint another process moved past is refused."""
        last_batch, last_cursor = previous
        if batch != last_batch + 1 or cursor <= last_cursor:
            raise StaleCheckpoint(
                f"run {self.run_id}: batch {batch} at cursor {cursor} does not follow "
                f"batch {last_batch} at cursor {last_cursor}"
            )
        self._trigger(
            event_class,
            at,
            batch=batch,
            cursor=cursor,
            statistics=statistics,
            first_invoice_number=invoice_numbers[0] if invoice_numbers else None,
            last_invoice_number=invoice_numbers[-1] if invoice_numbers else None,
        )

    def start_closing(self, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING or self.phase is not RunPhase.BILLING:
            raise RunNotRunnable(f"run {self.run_id} is not billing: it cannot start closing")
        self._trigger(RunClosingStarted, at)

    def complete_closing_batch(
        self,
        batch: int,
        cursor: int,
        statistics: BatchStatistics,
        invoice_numbers: list[int],
        at: datetime,
    ) -> None:
        if self.phase is not RunPhase.CLOSING or self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is not closing invoices")
        self._checkpoint(RunClosingBatchCompleted, (self.closing_batches, self.closing_cursor),
                         batch, cursor, statistics, invoice_numbers, at)  # fmt: skip

    def complete(self, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not running")
        self._trigger(RunCompleted, at, batches=self.batches, statistics=self.statistics)

    def _when_RunScheduled(self, event: RunScheduled) -> None:
        self.run_id = event.run_id
        self.period = Period(event.period_start, event.period_end)
        self.posting_date = event.posting_date
        self.selection = event.selection
        self.settings = event.settings
        self.scheduled_at = event.timestamp

    def _when_RunStarted(self, event: RunStarted) -> None:
        self.status = RunStatus.RUNNING
        self.log_position = event.log_position
        self.accounts_in_scope = event.accounts_in_scope
        self.rates = event.rates or RateSnapshot(on=self.posting_date)
        self.started_at = event.timestamp

    def _when_RunBatchCompleted(self, event: RunBatchCompleted) -> None:
        self.batches = event.batch
        self.cursor = event.cursor
        self.statistics = self.statistics.plus(event.statistics)

    def _when_RunClosingStarted(self, event: RunClosingStarted) -> None:
        self.phase = RunPhase.CLOSING

    def _when_RunClosingBatchCompleted(self, event: RunClosingBatchCompleted) -> None:
        self.closing_batches = event.batch
        self.closing_cursor = event.cursor
        self.statistics = self.statistics.plus(event.statistics)

    def _when_RunCompleted(self, event: RunCompleted) -> None:
        self.status = RunStatus.COMPLETED
        self.completed_at = event.timestamp
