"""The BillRun's state and how each of its events evolves it (`_when_<Event>`).

`BillRun` (domain.runs.bill_run) adds the commands, which decide; this class only
applies what was decided.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from domain.billing.exchange_rates import RateSnapshot
from domain.runs.events import (
    AccountParked,
    ParkedAccountBilled,
    RunBatchCompleted,
    RunCancelled,
    RunClosingBatchCompleted,
    RunClosingStarted,
    RunCollectionBatchCompleted,
    RunCollectionStarted,
    RunCompleted,
    RunDescribed,
    RunDisabled,
    RunEnabled,
    RunFailed,
    RunFinalized,
    RunLeased,
    RunLeaseReleased,
    RunPreviewed,
    RunRatesAdded,
    RunResumed,
    RunScheduled,
    RunStarted,
    RunValidated,
)
from domain.runs.settings import (
    RunOrigin,
    RunPhase,
    RunSettings,
    RunStatus,
    Selection,
)
from domain.runs.statistics import (
    BatchStatistics,
    CollectionStatistics,
    PreviewSummary,
    StepTimings,
)
from domain.shared.model import Aggregate
from domain.shared.periods import Period


class BillRunState(Aggregate):
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

    def _when_RunDisabled(self, event: RunDisabled) -> None:
        self.disabled = True

    def _when_RunEnabled(self, event: RunEnabled) -> None:
        self.disabled = False

    def _when_RunLeased(self, event: RunLeased) -> None:
        self.lease_holder = event.holder
        self.lease_expires_at = event.expires_at

    def _when_RunLeaseReleased(self, event: RunLeaseReleased) -> None:
        self.lease_holder = self.lease_expires_at = None
