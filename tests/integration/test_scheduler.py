"""Schedules, schedulers and managers against a real PostgreSQL: exactly one run
per schedule occurrence with two schedulers racing, one manager at a time on a
run (a lease), a crashed manager's run taken over once its lease expires, and
disabled runs skipped."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from application.runs.scheduler import (
    Manager,
    Scheduler,
    Scheduling,
    add_schedule,
    list_schedules,
    remove_schedule,
    set_run_disabled,
)
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.runs.bill_run import BillRun
from domain.runs.events import RunLeased, RunLeaseReleased, RunScheduled, RunStarted
from domain.runs.schedule_terms import PeriodRule, Recurrence, ScheduleTerms
from domain.runs.settings import RunOrigin, RunStatus, Selection
from domain.shared.periods import Period
from infrastructure.topics import topic_of
from tests.conftest import account, import_accounts, package

ACCOUNTS = 6
JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class Clock:
    """A clock the test moves; every application and manager of a test shares it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 3, 1))


@pytest.fixture
def apps(es_env: dict[str, str], clock: Clock) -> Iterator[tuple[Billing, Billing]]:
    """Two applications on one database: two processes, as far as the store knows."""
    first, second = Billing(es_env, clock=clock), Billing(es_env, clock=clock)
    try:
        import_accounts(
            first, *(account(f"ACC-{i}", package(amount="120.00")) for i in range(ACCOUNTS))
        )
        yield first, second
    finally:
        first.close()
        second.close()


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together by a barrier."""
    barrier = threading.Barrier(len(calls), timeout=30)

    def call(fn: Callable[[], Any]) -> Any:
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(call, calls))


def scheduled_runs(billing: Billing) -> list[BillRun]:
    ids = billing.queries.originators(topic_of(RunScheduled))
    return sorted(billing.load_many(BillRun, ids).values(), key=lambda run: run.run_id)


def events_of(billing: Billing, run_id: str) -> Counter[str]:
    return Counter(type(e).__name__ for e in billing.iter_history(billing.get_run(run_id).id))


def test_two_schedulers_queue_exactly_one_run_per_schedule_occurrence(
    apps: tuple[Billing, Billing], clock: Clock
) -> None:
    first, second = apps
    add_schedule(
        first,
        "nightly",
        ScheduleTerms(recurrence=Recurrence.DAILY, at=utc(2026, 3, 1, 6),
                      period=PeriodRule.PREVIOUS_DAY),
    )  # fmt: skip
    add_schedule(
        second,
        "monthly",
        # Started in January: a backfill of January, February and March.
        ScheduleTerms(recurrence=Recurrence.MONTHLY, at=utc(2026, 1, 1, 6), day_of_month=1,
                      period=PeriodRule.PREVIOUS_MONTH),
    )  # fmt: skip
    schedulers = (Scheduler(first), Scheduler(second))
    created = 0
    for day in range(1, 11):  # March 1 .. 10, at noon: the day's occurrence is due
        clock.now = utc(2026, 3, day, 12)
        results = at_once(*(lambda s=s: s.tick() for s in schedulers))
        created += sum(len(queued) for queued in results)
        # Schedulers that start now (knowing nothing) find everything queued.
        late = at_once(lambda: Scheduler(first).tick(), lambda: Scheduler(second).tick())
        assert late == [[], []]

    runs = scheduled_runs(first)
    expected = [f"monthly-2026-0{m}-01" for m in (1, 2, 3)] + [
        f"nightly-2026-03-{d:02}" for d in range(1, 11)
    ]
    assert [run.run_id for run in runs] == expected
    assert created == len(expected)  # each run was created by exactly one scheduler
    by_id = {run.run_id: run for run in runs}
    assert by_id["monthly-2026-02-01"].period == JANUARY
    assert by_id["monthly-2026-02-01"].origin == RunOrigin(
        schedule="monthly", occurrence=utc(2026, 2, 1, 6)
    )
    assert by_id["nightly-2026-03-05"].period == Period(date(2026, 3, 4), date(2026, 3, 4))
    assert all(run.status is RunStatus.SCHEDULED for run in runs)

    # Removed, a schedule queues nothing more; what it queued stays queued.
    remove_schedule(first, "nightly")
    clock.now = utc(2026, 3, 20, 12)
    queued = Scheduler(second).tick()
    assert [q.run_id for q in queued] == []
    assert [s.name for s in list_schedules(first)] == ["monthly"]
    assert len(scheduled_runs(first)) == len(expected)


def test_two_managers_claiming_at_once_one_wins_and_the_run_is_billed_once(
    apps: tuple[Billing, Billing], clock: Clock
) -> None:
    first, second = apps
    schedule_run(first, "R", JANUARY, None, Selection())  # by hand: queued all the same
    managers = (Manager(first, "m1", batch_size=2), Manager(second, "m2", batch_size=2))
    outcomes = at_once(*(m.tick for m in managers))

    done = [o for o in outcomes if o is not None]
    assert [o.outcome for o in done] == ["completed"]
    run = first.get_run("R")
    assert run.is_completed and run.statistics.invoices == ACCOUNTS
    history = events_of(first, "R")
    assert history["RunStarted"] == 1
    assert history["RunLeased"] == 1  # the loser's claim was refused by the store
    assert all(m.tick() is None for m in managers)  # nothing left to do


def test_a_crashed_managers_run_waits_for_its_lease_then_another_manager_finishes_it(
    apps: tuple[Billing, Billing], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = apps
    schedule_run(first, "R", JANUARY, None, Selection())

    class Crash(BaseException):
        """The process dies: nothing of the manager runs after this."""

    crashed = Manager(first, "crashed", batch_size=2)

    def crash_after_the_first_batch(run: BillRun) -> None:
        if run.batches >= 1:
            raise Crash

    monkeypatch.setattr(crashed, "_checkpoint", crash_after_the_first_batch)
    with pytest.raises(Crash):
        crashed.tick()
    run = first.get_run("R")
    assert run.status is RunStatus.RUNNING and run.batches == 1
    assert run.lease_holder == "crashed"

    other = Manager(second, "other", batch_size=2)
    clock.advance(seconds=59)
    assert other.tick() is None  # the lease is live: skipped
    clock.advance(seconds=2)
    outcome = other.tick()  # expired: taken over, resumed after the last batch
    assert outcome is not None and outcome.outcome == "completed"
    assert outcome.batches == ACCOUNTS // 2 - 1

    run = first.get_run("R")
    assert run.is_completed and run.statistics.invoices == ACCOUNTS
    assert run.statistics.accounts_billed == ACCOUNTS
    leases = [e for e in first.iter_history(run.id) if isinstance(e, RunLeased)]
    assert [lease.holder for lease in leases] == ["crashed", "other"]
    assert events_of(first, "R")["RunStarted"] == 1


def test_a_disabled_run_is_skipped_and_runs_once_enabled(
    apps: tuple[Billing, Billing], clock: Clock
) -> None:
    first, second = apps
    schedule_run(first, "R", JANUARY, None, Selection())
    run, changed = set_run_disabled(first, "R", True)
    assert changed and run.disabled
    assert set_run_disabled(first, "R", True)[1] is False  # already: nothing recorded

    manager = Manager(second, "m", batch_size=2)
    assert manager.tick() is None
    assert second.get_run("R").is_scheduled

    set_run_disabled(first, "R", False)
    outcome = manager.tick()
    assert outcome is not None and outcome.outcome == "completed"
    assert second.get_run("R").statistics.invoices == ACCOUNTS


def test_a_run_scheduled_disabled_waits_for_the_operator(
    apps: tuple[Billing, Billing], clock: Clock
) -> None:
    first, second = apps
    schedule_run(first, "R", JANUARY, None, Selection(), disabled=True)
    assert first.get_run("R").disabled and first.get_run("R").version == 2  # one save
    manager = Manager(second, "m", batch_size=2)
    assert manager.tick() is None  # left alone: time to check and preview it
    set_run_disabled(first, "R", False)
    outcome = manager.tick()
    assert outcome is not None and outcome.outcome == "completed"


def test_disabling_a_running_run_stops_its_manager_at_a_checkpoint(
    apps: tuple[Billing, Billing], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = apps
    schedule_run(first, "R", JANUARY, None, Selection())
    manager = Manager(first, "m", batch_size=2)
    checkpoint = manager._checkpoint

    def disable_after_the_first_batch(run: BillRun) -> None:
        if run.batches == 1 and not second.get_run("R").disabled:
            set_run_disabled(second, "R", True)  # an operator, from another process
        checkpoint(run)

    monkeypatch.setattr(manager, "_checkpoint", disable_after_the_first_batch)
    outcome = manager.tick()
    assert outcome is not None and outcome.outcome == "disabled"
    run = first.get_run("R")
    assert run.status is RunStatus.RUNNING and run.disabled
    assert run.batches < ACCOUNTS // 2 and run.lease_holder is None  # released
    assert manager.tick() is None

    set_run_disabled(second, "R", False)
    monkeypatch.setattr(manager, "_checkpoint", checkpoint)
    outcome = Manager(second, "n", batch_size=2).tick()  # no lease to wait for
    assert outcome is not None and outcome.outcome == "completed"
    assert first.get_run("R").statistics.invoices == ACCOUNTS


def test_a_stopping_manager_releases_its_run_to_the_next_one_at_once(
    apps: tuple[Billing, Billing], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = apps
    schedule_run(first, "R", JANUARY, None, Selection())
    manager = Manager(first, "m", batch_size=2)
    checkpoint = manager._checkpoint

    def stop_after_the_first_batch(run: BillRun) -> None:
        if run.batches == 1:
            manager.stop()  # SIGTERM, as the worker relays it
        checkpoint(run)

    monkeypatch.setattr(manager, "_checkpoint", stop_after_the_first_batch)
    outcome = manager.tick()
    assert outcome is not None and outcome.outcome == "stopped"
    assert manager.tick() is None  # a stopping manager claims nothing
    assert first.get_run("R").lease_holder is None
    released = [e for e in first.iter_history(first.get_run("R").id)]
    assert isinstance(released[-1], RunLeaseReleased)

    outcome = Manager(second, "n", batch_size=2).tick()
    assert outcome is not None and outcome.outcome == "completed"
    assert first.get_run("R").statistics.invoices == ACCOUNTS


def test_the_lease_is_renewed_while_a_long_run_executes(
    apps: tuple[Billing, Billing], clock: Clock
) -> None:
    first, _ = apps
    schedule_run(first, "R", JANUARY, None, Selection())
    ticking = Clock(utc(2026, 3, 1))

    def slow_clock() -> datetime:  # each reading is 20 s later: batches are slow
        ticking.advance(seconds=20)
        return ticking.now

    manager = Manager(first, "m", batch_size=1, clock=slow_clock)
    outcome = manager.tick()
    assert outcome is not None and outcome.outcome == "completed"
    run = first.get_run("R")
    leases = [e for e in first.iter_history(run.id) if isinstance(e, RunLeased)]
    assert len(leases) > 2 and {lease.holder for lease in leases} == {"m"}
    assert events_of(first, "R")["RunStarted"] == 1
    assert run.statistics.invoices == ACCOUNTS


def test_a_scheduling_pass_queues_what_is_due_and_executes_it(
    apps: tuple[Billing, Billing], clock: Clock
) -> None:
    first, _ = apps
    add_schedule(
        first,
        "jan",
        ScheduleTerms(recurrence=Recurrence.ONCE, at=utc(2026, 3, 1, 6),
                      period=PeriodRule.FIXED, period_start=date(2026, 1, 1),
                      period_end=date(2026, 1, 31)),
    )  # fmt: skip
    scheduling = Scheduling(Manager(first, "m", batch_size=4))
    clock.now = utc(2026, 3, 1, 5)
    done = scheduling.run_once()
    assert done.queued == [] and done.managed == []
    clock.now = utc(2026, 3, 1, 6)
    done = scheduling.run_once()
    assert [q.run_id for q in done.queued] == ["jan-2026-03-01"]
    assert [(m.run_id, m.outcome) for m in done.managed] == [("jan-2026-03-01", "completed")]
    run = first.get_run("jan-2026-03-01")
    assert run.is_completed and run.period == JANUARY
    started = [e for e in first.iter_history(run.id) if isinstance(e, RunStarted)]
    assert len(started) == 1
    assert scheduling.run_once().managed == []
