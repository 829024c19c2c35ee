"""Accounts with a long history load from their latest snapshot and the events
after it, and bill exactly what their full history says: never twice, also
when two executors race over snapshotted accounts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import psycopg

from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.account import Account
from domain.invoicing.events import InvoiceClosed
from domain.runs.settings import Selection
from domain.shared.ids import account_uuid
from domain.shared.periods import Period, add_months
from infrastructure.persistence import eventsourcing_environment
from tests.conftest import SteppingClock, account, import_accounts, package
from tests.integration.helpers import EventLog, assert_billed_at_most_once
from tests.integration.test_race import Lockstep

INTERVAL = 4


def month(index: int) -> Period:
    """The `index`-th month from January 2026."""
    start = add_months(date(2026, 1, 1), index)
    return Period(start, add_months(start, 1) - timedelta(days=1))


def bill_months(billing: Billing, months: range, batch_size: int = 2) -> None:
    for index in months:
        run_id = f"m{index:02d}"
        schedule_run(billing, run_id, month(index), None, Selection())
        BillRunExecutor(billing, batch_size).execute(run_id)


def state(loaded: Account) -> dict[str, Any]:
    return {k: v for k, v in vars(loaded).items() if k not in ("_pending", "snapshot_version")}


def snapshot_rows(database_url: str) -> list[tuple[Any, int]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT originator_id, originator_version FROM billing_snapshots "
            "ORDER BY originator_id, originator_version"
        ).fetchall()


def test_an_account_billed_for_thirty_six_months_loads_from_a_snapshot_and_bills_each_once(
    es_env: dict[str, str], database_url: str
) -> None:
    billing = Billing(es_env, clock=SteppingClock(), snapshot_interval=INTERVAL)
    try:
        import_accounts(billing, account("LONG-1", package()), account("LONG-2", package()))
        bill_months(billing, range(36))

        ids = [account_uuid("LONG-1"), account_uuid("LONG-2")]
        loaded = billing.load_many(Account, ids)
        replayed = {i: Account.project(None, billing.iter_history(i)) for i in ids}
        for i in ids:
            assert state(loaded[i]) == state(replayed[i]), "the snapshot lost or changed state"
            assert state(billing.get_account(loaded[i].account_id)) == state(replayed[i])
            rows = snapshot_rows(database_url)
            stored = [version for originator, version in rows if originator == i]
            assert stored, "no snapshot was taken"
            assert loaded[i].version - max(stored) < INTERVAL, "more events than the interval"
            assert loaded[i].packages["office"].next_bill_date == date(2029, 1, 1)

        # Billing again over any month, from the snapshotted state, bills nothing.
        for index in (0, 17, 35):
            schedule_run(billing, f"again-{index}", month(index), None, Selection())
            execution = BillRunExecutor(billing, 2).execute(f"again-{index}")
            assert execution.run.statistics.lines == 0
        BillRunExecutor(billing, 2).execute("m35")  # a completed run, executed again
        with EventLog(database_url) as log:
            assert_billed_at_most_once(log)
            assert len(log.states(InvoiceClosed)) == 2 * 36
    finally:
        billing.close()


def test_two_executors_racing_over_snapshotted_accounts_bill_the_run_exactly_once(
    es_env: dict[str, str], database_url: str
) -> None:
    first = Billing(es_env, clock=SteppingClock(), snapshot_interval=INTERVAL)
    second = Billing(eventsourcing_environment(database_url), clock=SteppingClock(),
                     snapshot_interval=INTERVAL)  # fmt: skip
    try:
        import_accounts(first, *(account(f"R-{n:02d}", package()) for n in range(12)))
        bill_months(first, range(6), batch_size=5)
        assert snapshot_rows(database_url), "the race must start from snapshots"
        schedule_run(first, "race", month(6), None, Selection())

        lockstep = Lockstep()
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(lockstep.execute, app, "race", 2) for app in (first, second)]
            done = [future.result(timeout=60) for future in futures]

        assert all(execution.run.is_completed for execution in done)
        assert sum(execution.conflicts for execution in done) >= 1
        with EventLog(database_url) as log:
            assert_billed_at_most_once(log)
            assert len(log.states(InvoiceClosed)) == 12 * 7
        ids = [account_uuid(f"R-{n:02d}") for n in range(12)]
        for loaded in first.load_many(Account, ids).values():
            assert loaded.packages["office"].next_bill_date == date(2026, 8, 1)
    finally:
        first.close()
        second.close()
