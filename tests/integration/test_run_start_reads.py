"""Starting a run reads what it needs once (issue 13): `billrun run execute` reads
the run and hands it on; the check, the rates and the scope share one log head.

Counted on a `Billing` that notes its own reads (the real application, the real
store): the run read, the log head asked for, the rate book read (each rate
computation reads the book once)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any
from uuid import UUID

import pytest

from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.exchange_rates import ExchangeRateBook
from domain.runs.bill_run import BillRun
from domain.runs.settings import Selection
from domain.shared.periods import Period
from infrastructure.persistence import eventsourcing_environment
from tests.conftest import SteppingClock, account, import_accounts, package

APRIL = Period(date(2026, 4, 1), date(2026, 4, 30))


class CountingBilling(Billing):
    """Counts, until the first batch, what the executor reads before it bills."""

    def __init__(self, env: dict[str, str], clock: SteppingClock) -> None:
        super().__init__(env, clock=clock)
        self.reads: Counter[str] = Counter()
        head = self.queries.head

        def counted_head() -> int:
            self.reads["log head"] += 1
            return head()

        self.queries.head = counted_head  # type: ignore[method-assign]

    def _get(self, cls: Any, aggregate_id: UUID, *args: Any, **kwargs: Any) -> Any:
        if cls is BillRun:
            self.reads["run"] += 1
        return super()._get(cls, aggregate_id, *args, **kwargs)

    def get_rate_book(self, as_of: datetime | None = None) -> ExchangeRateBook:
        self.reads["rate book"] += 1
        return super().get_rate_book(as_of)


class FirstBatch(Exception):
    pass


class StopsAtFirstBatch(BillRunExecutor):
    def _batch(self, *args: Any) -> None:
        raise FirstBatch


def test_run_execute_reads_the_run_once_and_computes_its_rates_once_before_the_first_batch(
    database_url: str, clock: SteppingClock
) -> None:
    billing = CountingBilling(eventsourcing_environment(database_url), clock)
    try:
        import_accounts(billing, account("A-1", package()), account("A-2"))
        schedule_run(billing, "apr", APRIL, None, Selection())
        billing.reads.clear()
        # What `billrun run execute apr` does (entrypoints/commands/runs.py).
        run = billing.get_run("apr")
        with pytest.raises(FirstBatch):
            StopsAtFirstBatch(billing, 10).execute_run(run)
        assert billing.reads == {"run": 1, "log head": 1, "rate book": 1}
        assert not billing.get_run("apr").is_scheduled  # started, then stopped
    finally:
        billing.close()
