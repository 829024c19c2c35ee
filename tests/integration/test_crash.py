"""`kill -9` a `billrun run execute` process mid-run, execute again, and get exactly
what an uninterrupted run makes of the same data: nothing billed twice, nothing lost.

The kills are placed with a `WriteGate` (a lock on the events table that lets the
process commit one transaction at a time), so each lands at a known point: the
process has committed the run's first k transactions and is waiting, with the
next one computed and in flight, when it dies. One more test kills without the
gate, wherever the process happens to be once a few batches are committed.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import date

import pytest

from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.invoicing.events import InvoiceOpened
from domain.runs.settings import RunStatus, Selection
from domain.shared.ids import run_uuid
from domain.shared.periods import Period
from tests.conftest import SteppingClock
from tests.integration.helpers import (
    EventLog,
    WriteGate,
    assert_billed_at_most_once,
    billing_on,
    fresh_database,
    import_with_usage_and_charges,
    outcome,
    run_cli,
    start_cli,
    varied_accounts,
    wait_until,
)

RUN = "2026-Q1"
Q1 = Period(date(2026, 1, 1), date(2026, 3, 31))
ACCOUNTS = varied_accounts(120)
BATCH_SIZE = 4
BATCHES = 30  # 120 accounts / 4


def is_schema_creation(waiting: dict) -> bool:
    return str(waiting["query"]).lstrip().upper().startswith("CREATE")


@pytest.fixture(scope="module")
def uninterrupted(postgres_server: str) -> Iterator[dict]:
    """The outcome of the same run executed once, start to finish, in its own database."""
    with fresh_database(postgres_server) as url:
        with billing_on(url, clock=SteppingClock()) as billing:
            prepare(billing)
            BillRunExecutor(billing, BATCH_SIZE).execute(RUN)
        yield outcome(url, RUN)


def prepare(billing: Billing) -> None:
    import_with_usage_and_charges(billing, *ACCOUNTS)
    schedule_run(billing, RUN, Q1, None, Selection())


def run_version(log: EventLog) -> int:
    return log.version(run_uuid(RUN))


def execute_and_kill(database_url: str, transactions: int) -> None:
    """Start `billrun run execute`, let it commit `transactions` transactions, one
    at a time, and SIGKILL it while its next one waits, computed and in flight."""
    with EventLog(database_url) as log:
        version_before = run_version(log)
        gate = WriteGate(database_url)
        process = start_cli(database_url, "run", "execute", RUN, "--json", batch_size=BATCH_SIZE)
        committed = 0
        seen: list[tuple[int, str, int]] = []  # who waited at the gate, for failures
        try:
            while True:
                waiting = gate.wait_for_writer(process)
                seen.append((waiting["pid"], waiting["query"][:30], run_version(log)))
                if is_schema_creation(waiting):  # start-up, not a point of the run
                    gate.let_one_through()
                    continue
                if committed == transactions:
                    break
                gate.let_one_through()
                committed += 1
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            gate.close()
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        # The dead client's session gets the lock once the gate opens, finds the
        # connection gone and rolls back: wait for it, so nothing of it lingers.
        wait_until(lambda: not log.session_alive(waiting["pid"]), what="the killed session to end")
        # Each transaction of a run (start, a batch, completion) extends the run by
        # exactly one event, and nothing of the one in flight was stored.
        assert run_version(log) == version_before + transactions, seen


def assert_nothing_half_written(billing: Billing, database_url: str) -> None:
    """What is committed is whole: every invoice closed, numbered without gaps and
    counted by a checkpoint; every billed line on one of those invoices."""
    run = billing.get_run(RUN)
    with EventLog(database_url) as log:
        numbers = log.closed_numbers()
        assert numbers == list(range(1, len(numbers) + 1))
        assert log.count(InvoiceOpened) == len(numbers) == run.statistics.invoices
        assert log.batches_committed() == run.batches
        assert log.billed_lines() == run.statistics.lines
        assert_billed_at_most_once(log)


def resume(database_url: str) -> dict:
    completed = run_cli(database_url, "run", "execute", RUN, "--json", batch_size=BATCH_SIZE)
    report = json.loads(completed.stdout)
    assert report["status"] == "completed"
    return report


@pytest.mark.parametrize(
    ("transactions", "batches_done"),
    [
        (12, 11),  # started, 11 batches done; batch 12 in flight
        (1 + BATCHES, BATCHES),  # every batch done; RunCompleted in flight
    ],
    ids=["mid-run", "completing"],
)
def test_a_run_killed_at_one_point_and_executed_again_equals_an_uninterrupted_run(
    billing: Billing,
    database_url: str,
    uninterrupted: dict,
    transactions: int,
    batches_done: int,
) -> None:
    prepare(billing)

    execute_and_kill(database_url, transactions)

    killed = billing.get_run(RUN)
    assert killed.status is not RunStatus.COMPLETED  # the kill landed mid-run
    assert killed.batches == batches_done
    assert_nothing_half_written(billing, database_url)

    report = resume(database_url)

    assert not report["already_completed"]
    assert_nothing_half_written(billing, database_url)
    assert outcome(database_url, RUN) == uninterrupted


def test_a_run_killed_again_and_again_while_resuming_still_equals_an_uninterrupted_run(
    billing: Billing, database_url: str, uninterrupted: dict
) -> None:
    prepare(billing)

    # Each execution resumes where the last was killed and is killed some
    # transactions later: with RunStarted in flight (nothing done), then with
    # batch 9 in flight, then batch 26.
    for transactions in (0, 9, 17):
        execute_and_kill(database_url, transactions)
        assert_nothing_half_written(billing, database_url)
    assert billing.get_run(RUN).batches == 25
    resume(database_url)

    assert_nothing_half_written(billing, database_url)
    assert outcome(database_url, RUN) == uninterrupted


def test_a_run_killed_without_warning_a_few_batches_in_equals_an_uninterrupted_run(
    billing: Billing, database_url: str, uninterrupted: dict
) -> None:
    """No gate: the process runs freely and is killed wherever it is (computing,
    inserting or committing) as soon as three batches are seen committed."""
    prepare(billing)
    process: subprocess.Popen[str] = start_cli(
        database_url, "run", "execute", RUN, "--json", batch_size=BATCH_SIZE
    )
    with EventLog(database_url) as log:
        try:
            wait_until(lambda: log.batches_committed() >= 3, interval=0.001, what="3 batches")
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        killed = billing.get_run(RUN)
        assert killed.status is RunStatus.RUNNING  # the kill landed mid-run
        assert 3 <= killed.batches < BATCHES

    resume(database_url)

    assert_nothing_half_written(billing, database_url)
    assert outcome(database_url, RUN) == uninterrupted
