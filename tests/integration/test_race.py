"""Races against real PostgreSQL: two executors on one run, two runs over one
period, two applications changing one account. Optimistic concurrency must turn
every race into a retry, never into a second line, invoice or number."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from uuid import UUID

import pytest
from eventsourcing.persistence import RecordConflictError

from application.runs.executor import BillRunExecutor, Execution, Progress
from application.runs.scheduler import Manager
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.invoicing.events import InvoiceOpened
from domain.invoicing.invoice import Invoice
from domain.runs.events import RunFailed
from domain.runs.settings import RunPhase, Selection
from domain.shared.model import TAggregate
from domain.shared.periods import Period
from tests.conftest import SteppingClock, account, import_accounts, package
from tests.integration.helpers import (
    EventLog,
    WriteGate,
    assert_billed_at_most_once,
    billing_on,
    fresh_database,
    import_with_usage_and_charges,
    outcome,
    start_cli,
    varied_accounts,
)
from tests.integration.test_close_types import configure

Q1 = Period(date(2026, 1, 1), date(2026, 3, 31))
JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
RUN = "2026-Q1"
CONFLICT_LOG = "another executor moved first"


def reference_outcome(server_url: str, accounts: list[dict], batch_size: int) -> dict:
    """What one executor, alone and uninterrupted, makes of the same accounts."""
    with fresh_database(server_url) as url:
        with billing_on(url, clock=SteppingClock()) as alone:
            import_with_usage_and_charges(alone, *accounts)
            schedule_run(alone, RUN, Q1, None, Selection())
            BillRunExecutor(alone, batch_size).execute(RUN)
        return outcome(url, RUN)


class Lockstep:
    """Makes two executors take turns: after committing, each waits for the other
    to commit too. So both do real work, and each one's next batch is always
    computed from a checkpoint the other has already moved past (a conflict)."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=20)

    def on_progress(self, progress: Progress) -> None:
        # A broken barrier means the other executor has finished: go on alone.
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()

    def execute(self, billing: Billing, run_id: str, batch_size: int) -> Execution:
        try:
            return BillRunExecutor(billing, batch_size, self.on_progress).execute(run_id)
        finally:
            self.barrier.abort()


@pytest.fixture
def second_billing(es_env: dict[str, str]) -> Iterator[Billing]:
    app = Billing(es_env, clock=SteppingClock())
    try:
        yield app
    finally:
        app.close()


def test_two_applications_starting_at_the_same_moment_on_one_database_both_start(
    billing: Billing, es_env: dict[str, str], database_url: str
) -> None:
    # Every application creates the schema (if missing) as it starts; hold both at
    # that point with the gate and release them together.
    gate = WriteGate(database_url)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            starting = [pool.submit(Billing, es_env) for _ in range(2)]
            gate.wait_for_waiting(2, [])
            gate.open()
            started = [future.result(timeout=30) for future in starting]
    finally:
        gate.close()
    for app in started:
        assert app.get_invoice_sequence().last_number == 0
        app.close()


def test_two_processes_executing_the_same_run_at_the_same_moment_bill_it_exactly_once(
    billing: Billing, database_url: str, postgres_server: str
) -> None:
    accounts = varied_accounts(300)
    import_with_usage_and_charges(billing, *accounts)
    schedule_run(billing, RUN, Q1, None, Selection())
    expected = reference_outcome(postgres_server, accounts, batch_size=5)

    # Both processes start up, connect and queue behind a lock on the events
    # table; releasing it lets them go at the same moment.
    gate = WriteGate(database_url)
    processes: list[subprocess.Popen[str]] = []
    try:
        for _ in range(2):
            processes.append(
                start_cli(database_url, "-v", "run", "execute", RUN, "--json", batch_size=5)
            )
        gate.wait_for_waiting(2, processes)
        gate.open()
        results = [process.communicate(timeout=60) for process in processes]
    finally:
        gate.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, f"exit {process.returncode}\n{out}\n{err}"
    reports = [json.loads(out) for out, _ in results]
    assert [r["already_completed"] for r in reports] == [False, False]  # both took part
    assert [r["status"] for r in reports] == ["completed", "completed"]
    assert sum(err.count(CONFLICT_LOG) for _, err in results) >= 1  # they really collided

    with EventLog(database_url) as log:
        assert_billed_at_most_once(log)
        numbers = log.closed_numbers()
        assert numbers == list(range(1, len(numbers) + 1))
        assert set(Counter(s["account_id"] for s in log.states(InvoiceOpened)).values()) == {1}
    assert outcome(database_url, RUN) == expected
    # 50 of the 300 accounts have no package due, but each has a credit dated in Q1.
    assert len(expected["invoices"]) == 300
    assert len(expected["charge_billings"]) == 300 and len(expected["usage_billings"]) == 300
    reasons = Counter(penalty[2] for penalty in expected["penalties"])
    assert reasons["early_termination"] == 150 and reasons["commitment_shortfall"] > 0


def test_two_executors_interleaved_in_threads_bill_the_run_exactly_once(
    billing: Billing, second_billing: Billing, database_url: str, postgres_server: str
) -> None:
    accounts = varied_accounts(40)
    import_with_usage_and_charges(billing, *accounts)
    schedule_run(billing, RUN, Q1, None, Selection())
    expected = reference_outcome(postgres_server, accounts, batch_size=3)

    lockstep = Lockstep()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(lockstep.execute, app, RUN, 3) for app in (billing, second_billing)]
        first, second = (future.result(timeout=60) for future in futures)

    assert first.run.is_completed and second.run.is_completed
    assert first.batches_committed >= 1 and second.batches_committed >= 1
    assert first.batches_committed + second.batches_committed == 14  # ceil(40 / 3)
    assert first.conflicts + second.conflicts >= 1
    with EventLog(database_url) as log:
        assert_billed_at_most_once(log)
    assert outcome(database_url, RUN) == expected


def test_two_runs_over_the_same_period_racing_bill_every_period_once(
    billing: Billing, second_billing: Billing, database_url: str
) -> None:
    accounts = varied_accounts(30)
    import_with_usage_and_charges(billing, *accounts)
    schedule_run(billing, "east", Q1, None, Selection())
    schedule_run(billing, "west", Q1, None, Selection())

    lockstep = Lockstep()
    with ThreadPoolExecutor(max_workers=2) as pool:
        east = pool.submit(lockstep.execute, billing, "east", 2)
        west = pool.submit(lockstep.execute, second_billing, "west", 2)
        executions = [east.result(timeout=60), west.result(timeout=60)]

    assert sum(e.conflicts for e in executions) >= 1
    with EventLog(database_url) as log:
        assert_billed_at_most_once(log)
        invoiced = Counter(s["account_id"] for s in log.states(InvoiceOpened))
        assert set(invoiced.values()) == {1}  # one invoice per account, across both runs
        assert len(invoiced) == 30  # every account: each has a credit dated in Q1
        numbers = log.closed_numbers()
        assert numbers == list(range(1, 31))
        lines = log.billed_lines()
    east_run, west_run = billing.get_run("east"), billing.get_run("west")
    assert east_run.statistics.invoices + west_run.statistics.invoices == 30
    assert east_run.statistics.lines + west_run.statistics.lines == lines


def test_two_applications_saving_conflicting_changes_to_one_account_store_only_one(
    billing: Billing, second_billing: Billing, database_url: str
) -> None:
    import_accounts(
        billing,
        account("ACME-001", package("office", "100.00")),
        account("BETA-002", package("office", "80.00")),
    )
    clock = SteppingClock()
    mine = billing.get_account("ACME-001")
    theirs = second_billing.get_account("ACME-001")
    also_theirs = second_billing.get_account("BETA-002")

    mine_lines = mine.bill_packages("manual", JANUARY, JANUARY.end, clock())
    mine_invoice = Invoice.open("manual", "ACME-001", "EUR", JANUARY.end, clock())
    for line in mine_lines:
        mine_invoice.add_line(line, clock())
    billing.save(mine, mine_invoice)

    theirs.bill_packages("manual", JANUARY, JANUARY.end, clock())
    also_theirs.bill_packages("manual", JANUARY, JANUARY.end, clock())
    their_invoice = Invoice.open("manual", "ACME-001", "EUR", JANUARY.end, clock())
    with EventLog(database_url) as log:
        events_before = log.total()
        with pytest.raises(RecordConflictError):
            second_billing.save(also_theirs, theirs, their_invoice)

        # The refused transaction wrote nothing, not even the change that did not conflict.
        assert log.total() == events_before
        assert log.package_billings() == {("ACME-001", "office", "2026-01-01"): 1}
        assert log.count(InvoiceOpened) == 1
        # Retrying from the stored state finds the period already billed.
        reloaded = second_billing.get_account("ACME-001")
        assert reloaded.bill_packages("manual", JANUARY, JANUARY.end, clock()) == []
        assert not reloaded.has_pending_events
        assert second_billing.get_account("BETA-002").version == 2
        assert_billed_at_most_once(log)


class ClosingRace(Billing):
    """A Billing whose next closing batch, between loading its accounts and loading
    their open invoices, lets `other` run: the window in which a second executor
    closes those invoices. Deterministic, where two free-running executors hit it
    only sometimes."""

    name = "Billing"  # the same tables as the application it stands in for
    other: Callable[[], object] | None = None
    racing = RUN

    def load_many(self, cls: type[TAggregate], ids: Sequence[UUID]) -> dict[UUID, TAggregate]:
        if (
            cls is Invoice
            and self.other is not None
            and self.get_run(self.racing).phase is RunPhase.CLOSING
        ):
            other, self.other = self.other, None
            other()
        return super().load_many(cls, ids)


@pytest.mark.parametrize("runs", [(RUN, RUN), (RUN, "other")], ids=["one run", "two runs"])
def test_an_executor_whose_invoices_another_closes_mid_batch_reloads_and_completes(
    es_env: dict[str, str], second_billing: Billing, database_url: str, runs: tuple[str, str]
) -> None:
    mine, theirs = runs
    raced = ClosingRace(es_env, clock=SteppingClock())
    try:
        configure(
            raced,
            "after_each_bill_run",
            *(account(f"A-{i}", package("p", "10.00")) for i in range(4)),
        )
        schedule_run(raced, mine, JANUARY, None, Selection())
        if theirs != mine:
            schedule_run(raced, theirs, JANUARY, None, Selection())
        raced.racing = mine
        raced.other = lambda: BillRunExecutor(second_billing, 2).execute(theirs)

        execution = BillRunExecutor(raced, 2).execute(mine)

        assert raced.other is None, "the other executor ran inside the closing batch"
        assert execution.run.is_completed
        assert execution.conflicts >= 1
        assert second_billing.get_run(theirs).is_completed
    finally:
        raced.close()
    with EventLog(database_url) as log:
        assert_billed_at_most_once(log)
        assert log.closed_numbers() == list(range(1, len(log.closed_numbers()) + 1))
        assert set(Counter(s["account_id"] for s in log.states(InvoiceOpened)).values()) == {1}


def test_a_manager_beside_a_manual_execute_that_closes_its_invoices_mid_batch_completes_the_run(
    es_env: dict[str, str], second_billing: Billing, database_url: str
) -> None:
    raced = ClosingRace(es_env, clock=SteppingClock())
    try:
        configure(
            raced,
            "after_each_bill_run",
            *(account(f"M-{i}", package("p", "10.00")) for i in range(4)),
        )
        schedule_run(raced, RUN, JANUARY, None, Selection())  # by hand: queued for managers
        raced.racing = RUN
        raced.other = lambda: BillRunExecutor(second_billing, 2).execute(RUN)

        managed = Manager(raced, "m1", batch_size=2).tick()

        assert raced.other is None, "the manual execute ran inside the manager's closing batch"
        assert managed is not None
        assert (managed.outcome, managed.detail) == ("completed", "")
        run = raced.get_run(RUN)
        assert run.is_completed, run.failure
    finally:
        raced.close()
    with EventLog(database_url) as log:
        assert_billed_at_most_once(log)
        assert not list(log.states(RunFailed))
