"""The BillRun aggregate: one bill period billed for a selection of accounts."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from domain.billing.exchange_rates import RateSnapshot
from domain.runs import events
from domain.runs.bill_run_state import BillRunState
from domain.runs.settings import (
    CancelMode,
    RunOrigin,
    RunPhase,
    RunSettings,
    RunStatus,
    Selection,
    WorkflowState,
)
from domain.runs.statistics import (
    BatchCheckpoint,
    BatchStatistics,
    CollectionStatistics,
    PreviewSummary,
)
from domain.shared.errors import BillRunError, RunNotRunnable, StaleCheckpoint
from domain.shared.ids import run_uuid
from domain.shared.inputs import InputRefused, check_date, check_text
from domain.shared.periods import Period

MAX_PERIOD_DAYS = 366
"""The longest bill period a run takes: a year, a leap year's included."""


class BillRun(BillRunState):
    """A bill run's commands: each checks the run's state, then records an event."""

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
            events.RunScheduled,
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
            events.RunStarted,
            at,
            log_position=log_position,
            accounts_in_scope=accounts_in_scope,
            rates=rates,
        )

    def complete_batch(self, checkpoint: BatchCheckpoint, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not running")
        self._checkpoint(events.RunBatchCompleted, (self.batches, self.cursor), checkpoint, at)

    def _checkpoint(
        self,
        event_class: type[events.RunBatchCompleted | events.RunClosingBatchCompleted],
        previous: tuple[int, int],
        checkpoint: BatchCheckpoint,
        at: datetime,
    ) -> None:
        """A batch's checkpoint, which must follow the `previous` (batch, cursor): a
        batch computed from a checkpoint another process moved past is refused."""
        last_batch, last_cursor = previous
        batch, cursor, numbers = checkpoint.batch, checkpoint.cursor, checkpoint.invoice_numbers
        if batch != last_batch + 1 or cursor <= last_cursor:
            raise StaleCheckpoint(
                f"run {self.run_id}: batch {batch} at cursor {cursor} does not follow "
                f"batch {last_batch} at cursor {last_cursor}"
            )
        timings = checkpoint.timings
        self._trigger(
            event_class,
            at,
            batch=batch,
            cursor=cursor,
            statistics=checkpoint.statistics,
            first_invoice_number=numbers[0] if numbers else None,
            last_invoice_number=numbers[-1] if numbers else None,
            **({} if timings is None else {"timings": timings}),
        )

    def record_preview(self, preview: PreviewSummary, at: datetime) -> None:
        """Keep the latest preview, which execution is compared with."""
        if self.status is not RunStatus.SCHEDULED:
            raise RunNotRunnable(
                f"run {self.run_id} is {self.status.value}: only a scheduled run is previewed"
            )
        if preview != self.preview:
            self._trigger(events.RunPreviewed, at, preview=preview)

    def park(self, account_id: str, reason: str, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not running")
        self._trigger(events.AccountParked, at, account_id=account_id, reason=reason)

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
            self._trigger(events.RunRatesAdded, at, account_id=account_id, rates=added)
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
            events.ParkedAccountBilled,
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
            events.RunCancelled,
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
        self._trigger(events.RunValidated, at, invoices_approved=invoices_approved)

    def finalize(self, at: datetime) -> None:
        if self.workflow_state is not WorkflowState.VALIDATED:
            raise RunNotRunnable(
                f"run {self.run_id} is {self.workflow_state.value}: only a validated run "
                "is completed"
            )
        self._trigger(events.RunFinalized, at)

    def describe(self, description: str, at: datetime) -> None:
        """The one thing that can change after a run is created (the seed)."""
        if description != self.description:
            self._trigger(events.RunDescribed, at, description=description)

    def start_closing(self, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING or self.phase is not RunPhase.BILLING:
            raise RunNotRunnable(f"run {self.run_id} is not billing: it cannot start closing")
        self._trigger(events.RunClosingStarted, at)

    def complete_closing_batch(self, checkpoint: BatchCheckpoint, at: datetime) -> None:
        """A closing batch's checkpoint (closing batches record no step timings)."""
        if self.phase is not RunPhase.CLOSING or self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is not closing invoices")
        previous = (self.closing_batches, self.closing_cursor)
        untimed = replace(checkpoint, timings=None)
        self._checkpoint(events.RunClosingBatchCompleted, previous, untimed, at)

    def start_collecting(self, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING or self.phase is RunPhase.COLLECTING:
            raise RunNotRunnable(f"run {self.run_id} is not billing: it cannot start collecting")
        if not self.settings.collect_payments:
            raise RunNotRunnable(f"run {self.run_id} does not collect payments")
        self._trigger(events.RunCollectionStarted, at)

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
            events.RunCollectionBatchCompleted,
            at,
            batch=batch,
            cursor=cursor,
            statistics=statistics,
            collection_ms=ms,
        )

    def complete(self, at: datetime) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not running")
        self._trigger(events.RunCompleted, at, batches=self.batches, statistics=self.statistics)

    def fail(self, reason: str, at: datetime) -> None:
        """Stop a scheduled or running run on an error; managers leave it alone."""
        if not self.is_queued:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}: it cannot fail")
        self._trigger(events.RunFailed, at, reason=reason.strip() or "unknown error")

    def resume(self, at: datetime) -> None:
        """Execute a failed run again (after the fix), from its last checkpoint."""
        if self.status is not RunStatus.FAILED:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}, not failed")
        self._trigger(events.RunResumed, at)

    # Operating the queue: disabling, and managers' leases (docs/schedules.md) -----

    def disable(self, at: datetime) -> bool:
        """Managers skip the run until it is enabled; False: it already was disabled.
        A manager executing it stops at its next checkpoint."""
        if not self.is_queued:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}: nothing to disable")
        if self.disabled:
            return False
        self._trigger(events.RunDisabled, at)
        return True

    def enable(self, at: datetime) -> bool:
        """Managers may pick the run again; False: it was not disabled."""
        if not self.is_queued:
            raise RunNotRunnable(f"run {self.run_id} is {self.status.value}: nothing to enable")
        if not self.disabled:
            return False
        self._trigger(events.RunEnabled, at)
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
        expires = self.lease_expires_at
        if self.lease_holder != holder and expires is not None and expires > at:
            raise RunNotRunnable(
                f"run {self.run_id} is leased by {self.lease_holder} until {expires.isoformat()}"
            )
        self._trigger(events.RunLeased, at, holder=holder, expires_at=expires_at)

    def release(self, holder: str, at: datetime) -> bool:
        """Give the lease up before it expires; False: `holder` does not hold it."""
        if self.lease_holder != holder or not self.is_queued:
            return False
        self._trigger(events.RunLeaseReleased, at, holder=holder)
        return True
