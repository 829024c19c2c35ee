"""The BillRun aggregate: one bill period billed for a selection of accounts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from domain.billing.exchange_rates import RateSnapshot
from domain.billing.terms import BillingScope
from domain.receivables.receivables import CollectionType
from domain.runs.run_content import add_digests
from domain.shared.errors import BillRunError, RunNotRunnable, StaleCheckpoint
from domain.shared.ids import run_uuid
from domain.shared.inputs import InputRefused, check_date, check_text
from domain.shared.model import Aggregate, DomainEvent, ValueObject
from domain.shared.periods import Period

MAX_PERIOD_DAYS = 366
"""The longest bill period a run takes: a year, a leap year's included."""


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
    by the period's end, whatever period they relate to (domain.contracts)."""
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


class BatchStatistics(ValueObject):
    """What one batch (or, summed, the whole run) produced.

    The account figures (docs/architecture.md, "Run statistics") satisfy
    `accounts_seen == accounts_billed + accounts_skipped + accounts_parked`, per
    batch and so for the run; a retry moves its family out of `accounts_parked`
    (a negative count there) into billed or skipped, seeing no account anew.
    """

    accounts_scanned: int = 0
    """Accounts read from the log (every opened account, selected or not)."""
    accounts_seen: int = 0
    """Accounts the run reached: the selected invoicers and their members."""
    accounts_billed: int = 0
    """Accounts seen with something recorded by the run (lines, a zero invoice)."""
    accounts_skipped: int = 0
    """Accounts seen with nothing due in the period."""
    accounts_parked: int = 0
    """Accounts of families that could not be billed (`AccountParked`)."""
    invoices: int = 0
    """Invoices closed (and numbered)."""
    lines: int = 0
    totals: dict[str, Decimal] = Field(default_factory=dict)
    """Closed invoices' net amounts (subtotals, tax excluded), per currency."""
    tax_totals: dict[str, Decimal] = Field(default_factory=dict)
    """Closed invoices' tax, per currency."""
    gross_totals: dict[str, Decimal] = Field(default_factory=dict)
    """Closed invoices' totals (net + tax), per currency."""
    base_totals: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    """The same, converted with the run's rates into the base currency (when one is
    set): `{base: {"net": ..., "tax": ..., "gross": ...}}`, each invoice's net and
    tax converted once and gross their sum."""
    invoices_left_open: int = 0
    """Invoices that received lines or were opened and stay open (close types)."""
    invoices_released: int = 0
    """Held invoices of earlier runs released for rendering and delivery."""
    content_digest: str = ""
    """The lines billed, as a sum of their digests (`domain.run_content`)."""
    billed: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    """Amounts billed per currency and kind of line (what a preview compares)."""
    line_counts: dict[str, int] = Field(default_factory=dict)
    """Lines billed per kind (`recurring`, `usage`, `charge`, `penalty`)."""
    dunning_applied: int = 0
    """Dunning stages applied to overdue invoices (the AR step)."""
    accounts_suspended: int = 0
    stranded: int = 0
    """Package bill dates before the period that no run billed (no run covered
    them), left owed by this run: bill them with a catch-up run."""

    def plus(self, other: BatchStatistics) -> BatchStatistics:
        return BatchStatistics(
            accounts_scanned=self.accounts_scanned + other.accounts_scanned,
            accounts_seen=self.accounts_seen + other.accounts_seen,
            accounts_billed=self.accounts_billed + other.accounts_billed,
            accounts_skipped=self.accounts_skipped + other.accounts_skipped,
            accounts_parked=self.accounts_parked + other.accounts_parked,
            invoices=self.invoices + other.invoices,
            lines=self.lines + other.lines,
            totals=_add(self.totals, other.totals),
            tax_totals=_add(self.tax_totals, other.tax_totals),
            gross_totals=_add(self.gross_totals, other.gross_totals),
            base_totals=_add_nested(self.base_totals, other.base_totals),
            invoices_left_open=self.invoices_left_open + other.invoices_left_open,
            invoices_released=self.invoices_released + other.invoices_released,
            content_digest=add_digests(self.content_digest, other.content_digest),
            billed=_add_nested(self.billed, other.billed),
            line_counts={
                kind: self.line_counts.get(kind, 0) + other.line_counts.get(kind, 0)
                for kind in sorted(set(self.line_counts) | set(other.line_counts))
            },
            dunning_applied=self.dunning_applied + other.dunning_applied,
            accounts_suspended=self.accounts_suspended + other.accounts_suspended,
            stranded=self.stranded + other.stranded,
        )


class CollectionStatistics(ValueObject):
    """What the collection step did (one batch, or summed, the run)."""

    attempts: int = 0
    approved: int = 0
    declined: int = 0
    errors: int = 0
    pending: int = 0
    """Timed out and not reconciled yet: never guessed."""
    collected: dict[str, Decimal] = Field(default_factory=dict)
    """Approved amounts, per currency."""

    def plus(self, other: CollectionStatistics) -> CollectionStatistics:
        collected = dict(self.collected)
        for currency, amount in other.collected.items():
            collected[currency] = collected.get(currency, Decimal(0)) + amount
        return CollectionStatistics(
            attempts=self.attempts + other.attempts,
            approved=self.approved + other.approved,
            declined=self.declined + other.declined,
            errors=self.errors + other.errors,
            pending=self.pending + other.pending,
            collected=dict(sorted(collected.items())),
        )


def _add(a: dict[str, Decimal], b: dict[str, Decimal]) -> dict[str, Decimal]:
    summed = dict(a)
    for currency, amount in b.items():
        summed[currency] = summed.get(currency, Decimal(0)) + amount
    return dict(sorted(summed.items()))


def _add_nested(
    a: dict[str, dict[str, Decimal]], b: dict[str, dict[str, Decimal]]
) -> dict[str, dict[str, Decimal]]:
    summed = {currency: dict(kinds) for currency, kinds in a.items()}
    for currency, kinds in b.items():
        into = summed.setdefault(currency, {})
        for kind, amount in kinds.items():
            into[kind] = into.get(kind, Decimal(0)) + amount
    return {c: dict(sorted(k.items())) for c, k in sorted(summed.items())}


class RunOrigin(ValueObject):
    """The schedule occurrence that queued a run (docs/schedules.md)."""

    schedule: str
    occurrence: datetime


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


class RunStarted(DomainEvent):
    log_position: int
    """Accounts opened at or before this notification id are in the run."""
    accounts_in_scope: int
    rates: RateSnapshot | None = None
    """The exchange rates the run converts with, fixed when it starts."""


class StepTimings(ValueObject):
    """Where a batch's time went, in milliseconds: billing (every billing step, one
    pass per account) and invoicing (closing, numbering, saving)."""

    billing_ms: int = 0
    invoicing_ms: int = 0
    dunning_ms: int = 0
    collection_ms: int = 0

    def plus(self, other: StepTimings) -> StepTimings:
        return StepTimings(
            billing_ms=self.billing_ms + other.billing_ms,
            invoicing_ms=self.invoicing_ms + other.invoicing_ms,
            dunning_ms=self.dunning_ms + other.dunning_ms,
            collection_ms=self.collection_ms + other.collection_ms,
        )


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


class RunFailed(DomainEvent):
    """The run stopped on an error that is not one account's (those are parked)."""

    reason: str


class RunResumed(DomainEvent):
    """An operator executes a failed run again, after the fix."""


class PreviewSummary(ValueObject):
    """What a preview computed the run would bill (nothing written but this)."""

    digest: str
    invoices: int
    lines: int
    totals: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    """Amounts per currency and kind of line."""
    log_position: int
    """The log head the preview read up to."""


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


class RunCancelled(DomainEvent):
    mode: CancelMode
    reason: str
    invoices_cancelled: int


class RunValidated(DomainEvent):
    invoices_approved: int


class RunFinalized(DomainEvent):
    pass


class RunDescribed(DomainEvent):
    description: str


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
        self.collection_cursor = 0
        self.collection_batches = 0
        self.collection = CollectionStatistics()
        self.collection_started_at: datetime | None = None
        self.failure: str | None = None
        self._status_before_failure = RunStatus.SCHEDULED
        self.scheduled_at: datetime | None = None
        self.description = ""
        self.preview: PreviewSummary | None = None
        self.cancelled: RunCancelled | None = None
        self.validated = False
        self.finalized = False
        self.timings = StepTimings()
        self.parked: dict[str, str] = {}
        """Accounts the run could not bill, with why; retried ones leave."""
        self.started_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.origin: RunOrigin | None = None
        self.disabled = False
        self.lease_holder: str | None = None
        self.lease_expires_at: datetime | None = None

    @classmethod
    def schedule(
        cls,
        run_id: str,
        period: Period,
        posting_date: date | None,
        selection: Selection,
        at: datetime,
        settings: RunSettings | None = None,
        origin: RunOrigin | None = None,
    ) -> BillRun:
        if not run_id.strip():
            raise BillRunError("a bill run needs a non-empty id")
        try:
            check_text(run_id, identifier=True)
            check_date(period.start)
            check_date(period.end)
            if posting_date is not None:
                check_date(posting_date)
        except InputRefused as error:
            raise BillRunError(f"run {run_id!r}: {error}") from None
        # Bounded so a run's work is: a period of centuries once took seconds and
        # hundreds of MB per account, and parked every account on a date overflow.
        if period.days > MAX_PERIOD_DAYS:
            raise BillRunError(
                f"the period {period} is {period.days} days long; a bill run's period is "
                f"at most {MAX_PERIOD_DAYS} days (one year): schedule one run per year"
            )
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
            origin=origin,
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
        timings: StepTimings | None = None,
    ) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not running")
        self._checkpoint(RunBatchCompleted, (self.batches, self.cursor), batch, cursor,
                         statistics, invoice_numbers, at, timings)  # fmt: skip

    def _checkpoint(
        self,
        event_class: type[RunBatchCompleted | RunClosingBatchCompleted],
        previous: tuple[int, int],
        batch: int,
        cursor: int,
        statistics: BatchStatistics,
        invoice_numbers: list[int],
        at: datetime,
        timings: StepTimings | None = None,
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
            **({} if timings is None else {"timings": timings}),
        )

    def record_preview(self, preview: PreviewSummary, at: datetime) -> None:
        """Keep the latest preview, which execution is compared with."""
        if self.status is not RunStatus.SCHEDULED:
            raise RunNotRunnable(
                f"run {self.run_id} is {self.status.value}: only a scheduled run is previewed"
            )
        if preview != self.preview:
            self._trigger(RunPreviewed, at, preview=preview)

    def park(self, account_id: str, reason: str, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not running")
        self._trigger(AccountParked, at, account_id=account_id, reason=reason)

    def add_rates_for_retry(self, account_id: str, book: RateSnapshot, at: datetime) -> list[str]:
        """Add to the run's rates the pairs of `book` (the rate book on the posting
        date) it lacks, for retrying the parked `account_id`; the pairs added.

        Rates are fixed when a run starts, so a family parked for a missing rate
        could never be retried; the pairs it fixed stay as they are."""
        if account_id not in self.parked:
            raise BillRunError(f"account {account_id} is not parked in run {self.run_id}")
        if book.on != self.posting_date:
            raise BillRunError(
                f"run {self.run_id} converts at its posting date {self.posting_date}, "
                f"not with rates of {book.on}"
            )
        added = {
            key: rate for key, rate in sorted(book.rates.items()) if key not in self.rates.rates
        }
        if added:
            self._trigger(RunRatesAdded, at, account_id=account_id, rates=added)
        return list(added)

    def record_retry(
        self,
        account_id: str,
        statistics: BatchStatistics,
        invoice_numbers: list[int],
        at: datetime,
    ) -> None:
        if account_id not in self.parked:
            raise BillRunError(f"account {account_id} is not parked in run {self.run_id}")
        self._trigger(
            ParkedAccountBilled,
            at,
            account_id=account_id,
            statistics=statistics,
            first_invoice_number=invoice_numbers[0] if invoice_numbers else None,
            last_invoice_number=invoice_numbers[-1] if invoice_numbers else None,
        )

    def cancel(self, mode: CancelMode, reason: str, invoices_cancelled: int, at: datetime) -> None:
        """Cancel a scheduled or completed run (a running one must finish first)."""
        if self.status is RunStatus.RUNNING:
            raise RunNotRunnable(
                f"run {self.run_id} is running: let it complete (or resume it), then cancel it"
            )
        if self.status is RunStatus.CANCELLED:
            raise RunNotRunnable(f"run {self.run_id} is already cancelled")
        if self.finalized:
            raise RunNotRunnable(f"run {self.run_id} is completed for good: it cannot be cancelled")
        if not reason.strip():
            raise BillRunError(f"cancelling run {self.run_id} needs a reason")
        self._trigger(
            RunCancelled,
            at,
            mode=mode,
            reason=reason.strip(),
            invoices_cancelled=invoices_cancelled,
        )

    @property
    def workflow_state(self) -> WorkflowState:
        if self.status is RunStatus.CANCELLED:
            return WorkflowState.CANCELLED
        if self.status is RunStatus.FAILED:
            return WorkflowState.FAILED
        if self.status is not RunStatus.COMPLETED:
            return WorkflowState(self.status.value)
        if self.finalized:
            return WorkflowState.COMPLETED
        return WorkflowState.VALIDATED if self.validated else WorkflowState.DRAFTS_READY

    def validate(self, invoices_approved: int, at: datetime) -> None:
        if self.workflow_state is not WorkflowState.DRAFTS_READY:
            raise RunNotRunnable(
                f"run {self.run_id} is {self.workflow_state.value}: only a run with drafts "
                "ready is validated"
            )
        self._trigger(RunValidated, at, invoices_approved=invoices_approved)

    def finalize(self, at: datetime) -> None:
        if self.workflow_state is not WorkflowState.VALIDATED:
            raise RunNotRunnable(
                f"run {self.run_id} is {self.workflow_state.value}: only a validated run "
                "is completed"
            )
        self._trigger(RunFinalized, at)

    @property
    def steps(self) -> list[dict[str, object]]:
        """Which steps the run performed, in the seed's order, with their counts;
        billing steps share one timing (one pass per account), invoicing another."""
        settings, stats = self.settings, self.statistics
        counts = stats.line_counts
        started = self.started_at.isoformat(timespec="seconds") if self.started_at else None
        billing = {"seconds": Decimal(self.timings.billing_ms) / 1000, "started": started}
        collection = self.collection
        collecting = self.collection_started_at
        return [
            {"step": "run_dunning", "ran": settings.run_dunning,
             "stages_applied": stats.dunning_applied,
             "accounts_suspended": stats.accounts_suspended,
             "seconds": Decimal(self.timings.dunning_ms) / 1000, "started": started},
            {"step": "bill_packages", "ran": settings.bill_packages,
             "lines": counts.get("recurring", 0), **billing},
            {"step": "bill_usage", "ran": settings.bill_usage,
             "lines": counts.get("usage", 0), **billing},
            {"step": "run_contracts", "ran": settings.run_contracts,
             "lines": counts.get("penalty", 0), **billing},
            {"step": "bill_charges", "ran": settings.bill_charges,
             "lines": counts.get("charge", 0), **billing},
            {"step": "run_invoices", "ran": settings.run_invoices,
             "invoices_closed": stats.invoices, "invoices_left_open": stats.invoices_left_open,
             "seconds": Decimal(self.timings.invoicing_ms) / 1000, "started": started},
            {"step": "render_invoices", "ran": settings.render_invoices, "by": "the worker"},
            {"step": "deliver_invoices", "ran": settings.deliver_invoices, "by": "the worker"},
            {"step": "collect_payments", "ran": settings.collect_payments,
             "collection_type": settings.collection_type.value,
             "attempts": collection.attempts, "approved": collection.approved,
             "declined": collection.declined, "errors": collection.errors,
             "pending": collection.pending, "collected": collection.collected,
             "seconds": Decimal(self.timings.collection_ms) / 1000,
             "started": collecting.isoformat(timespec="seconds") if collecting else None},
        ]  # fmt: skip

    def describe(self, description: str, at: datetime) -> None:
        """The one thing that can change after a run is created (the seed)."""
        if description != self.description:
            self._trigger(RunDescribed, at, description=description)

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

    def start_collecting(self, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING or self.phase is RunPhase.COLLECTING:
            raise RunNotRunnable(f"run {self.run_id} is not billing: it cannot start collecting")
        if not self.settings.collect_payments:
            raise RunNotRunnable(f"run {self.run_id} does not collect payments")
        self._trigger(RunCollectionStarted, at)

    def complete_collection_batch(
        self, batch: int, cursor: int, statistics: CollectionStatistics, ms: int, at: datetime
    ) -> None:
        if self.phase is not RunPhase.COLLECTING or self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is not collecting payments")
        if batch != self.collection_batches + 1 or cursor <= self.collection_cursor:
            raise StaleCheckpoint(
                f"run {self.run_id}: collection batch {batch} at cursor {cursor} does not "
                f"follow batch {self.collection_batches} at cursor {self.collection_cursor}"
            )
        self._trigger(
            RunCollectionBatchCompleted,
            at,
            batch=batch,
            cursor=cursor,
            statistics=statistics,
            collection_ms=ms,
        )

    def complete(self, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not running")
        self._trigger(RunCompleted, at, batches=self.batches, statistics=self.statistics)

    def fail(self, reason: str, at: datetime) -> None:
        """Stop a scheduled or running run on an error; managers leave it alone."""
        if not self.is_queued:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}: it cannot fail")
        self._trigger(RunFailed, at, reason=reason.strip() or "unknown error")

    def resume(self, at: datetime) -> None:
        """Execute a failed run again (after the fix), from its last checkpoint."""
        if self.status is not RunStatus.FAILED:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not failed")
        self._trigger(RunResumed, at)

    def _when_RunCollectionStarted(self, event: RunCollectionStarted) -> None:
        self.phase = RunPhase.COLLECTING
        self.collection_started_at = event.timestamp

    def _when_RunCollectionBatchCompleted(self, event: RunCollectionBatchCompleted) -> None:
        self.collection_batches = event.batch
        self.collection_cursor = event.cursor
        self.collection = self.collection.plus(event.statistics)
        self.timings = self.timings.plus(StepTimings(collection_ms=event.collection_ms))

    def _when_RunFailed(self, event: RunFailed) -> None:
        self._status_before_failure = self.status
        self.status = RunStatus.FAILED
        self.failure = event.reason
        self.lease_holder = self.lease_expires_at = None

    def _when_RunResumed(self, event: RunResumed) -> None:
        self.status = self._status_before_failure
        self.failure = None

    def _when_RunScheduled(self, event: RunScheduled) -> None:
        self.run_id = event.run_id
        self.period = Period(event.period_start, event.period_end)
        self.posting_date = event.posting_date
        self.selection = event.selection
        self.settings = event.settings
        self.scheduled_at = event.timestamp
        self.origin = event.origin

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
        if event.timings is not None:
            self.timings = self.timings.plus(event.timings)

    def _when_RunPreviewed(self, event: RunPreviewed) -> None:
        self.preview = event.preview

    def _when_AccountParked(self, event: AccountParked) -> None:
        self.parked[event.account_id] = event.reason

    def _when_RunRatesAdded(self, event: RunRatesAdded) -> None:
        self.rates = self.rates.model_copy(update={"rates": {**self.rates.rates, **event.rates}})

    def _when_ParkedAccountBilled(self, event: ParkedAccountBilled) -> None:
        del self.parked[event.account_id]
        self.statistics = self.statistics.plus(event.statistics)

    def _when_RunValidated(self, event: RunValidated) -> None:
        self.validated = True

    def _when_RunFinalized(self, event: RunFinalized) -> None:
        self.finalized = True

    def _when_RunCancelled(self, event: RunCancelled) -> None:
        self.status = RunStatus.CANCELLED
        self.cancelled = event

    def _when_RunDescribed(self, event: RunDescribed) -> None:
        self.description = event.description

    def _when_RunClosingStarted(self, event: RunClosingStarted) -> None:
        self.phase = RunPhase.CLOSING

    def _when_RunClosingBatchCompleted(self, event: RunClosingBatchCompleted) -> None:
        self.closing_batches = event.batch
        self.closing_cursor = event.cursor
        self.statistics = self.statistics.plus(event.statistics)

    def _when_RunCompleted(self, event: RunCompleted) -> None:
        self.status = RunStatus.COMPLETED
        self.completed_at = event.timestamp
        self.lease_holder = self.lease_expires_at = None

    # Operating the queue: disabling, and managers' leases (docs/schedules.md) -----

    def disable(self, at: datetime) -> bool:
        """Managers skip the run until it is enabled; False: it already was disabled.
        A manager executing it stops at its next checkpoint."""
        if not self.is_queued:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}: nothing to disable")
        if self.disabled:
            return False
        self._trigger(RunDisabled, at)
        return True

    def enable(self, at: datetime) -> bool:
        """Managers may pick the run again; False: it was not disabled."""
        if not self.is_queued:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}: nothing to enable")
        if not self.disabled:
            return False
        self._trigger(RunEnabled, at)
        return True

    @property
    def is_queued(self) -> bool:
        """Scheduled or running: a manager may execute it (unless it is disabled)."""
        return self.status is RunStatus.SCHEDULED or self.status is RunStatus.RUNNING

    def lease_is_live(self, now: datetime) -> bool:
        return self.lease_expires_at is not None and self.lease_expires_at > now

    def lease(self, holder: str, at: datetime, expires_at: datetime) -> None:
        """Claim the run for `holder` until `expires_at`, or renew its own claim.

        Refused while another holder's lease is live: two managers claiming at once
        both record this event at the run's next version, and the event store keeps
        one."""
        if not holder.strip():
            raise BillRunError("a lease needs a holder")
        if expires_at <= at:
            raise BillRunError(f"a lease must expire after it is taken ({at.isoformat()})")
        if not self.is_queued:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}: nothing to execute")
        if self.disabled:
            raise RunNotRunnable(f"run {self.run_id} is disabled: enable it first")
        if self.lease_holder != holder and self.lease_is_live(at):
            assert self.lease_expires_at is not None
            raise RunNotRunnable(
                f"run {self.run_id} is leased by {self.lease_holder} until "
                f"{self.lease_expires_at.isoformat()}"
            )
        self._trigger(RunLeased, at, holder=holder, expires_at=expires_at)

    def release(self, holder: str, at: datetime) -> bool:
        """Give the lease up before it expires; False: `holder` does not hold it."""
        if self.lease_holder != holder or not self.is_queued:
            return False
        self._trigger(RunLeaseReleased, at, holder=holder)
        return True

    def _when_RunDisabled(self, event: RunDisabled) -> None:
        self.disabled = True

    def _when_RunEnabled(self, event: RunEnabled) -> None:
        self.disabled = False

    def _when_RunLeased(self, event: RunLeased) -> None:
        self.lease_holder = event.holder
        self.lease_expires_at = event.expires_at

    def _when_RunLeaseReleased(self, event: RunLeaseReleased) -> None:
        self.lease_holder = self.lease_expires_at = None
