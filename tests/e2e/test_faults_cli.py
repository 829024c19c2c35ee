"""What an adversary (or a careless operator) broke, as a user meets it through the
CLI: statistics that disagree with what a run did, a locked events table, a
terminated connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from application.shared.app import Billing
from tests.conftest import account, import_accounts, package
from tests.e2e.conftest import Cli
from tests.integration.test_close_types import configure


def test_run_status_counts_no_invoice_left_open_after_the_closing_pass_closed_them(
    cli: Cli, store: Billing
) -> None:
    configure(
        store, "after_each_bill_run", *(account(f"A-{i}", package("p", "10.00")) for i in range(3))
    )
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    cli.ok("run", "execute", "jan")

    status = cli.json("run", "status", "jan", "--json")
    text = " ".join(cli.ok("run", "status", "jan").stdout.split())

    assert (status["status"], status["invoices"], status["invoices_left_open"]) == (
        "completed", 3, 0,
    )  # fmt: skip
    assert "│ invoices left open │ 0 │" in text, text


@pytest.fixture
def intruder(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A session someone opened with psql, to hold locks on the events table."""
    with psycopg.connect(database_url, application_name="psql-intruder") as conn:
        yield conn


@pytest.mark.parametrize(
    ("mode", "command"),
    [
        ("ACCESS EXCLUSIVE", ("run", "status", "jan", "--json")),
        (
            "EXCLUSIVE",
            (
                "run",
                "schedule",
                "feb",
                "--period-start",
                "2026-02-01",
                "--period-end",
                "2026-02-28",
            ),
        ),
    ],
    ids=["a read", "a write"],
)
def test_a_locked_events_table_ends_in_a_bounded_wait_naming_the_session_that_holds_it(
    cli: Cli, store: Billing, intruder: psycopg.Connection[Any], mode: str, command: tuple[str, ...]
) -> None:
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    intruder.execute(f"LOCK TABLE billing_events IN {mode} MODE")
    cli.env["BILLRUN_LOCK_TIMEOUT"] = "2"

    started = time.monotonic()
    result = cli(*command, timeout=60)
    waited = time.monotonic() - started

    assert result.returncode == 3, (result.stdout, result.stderr)
    assert waited < 20, f"the wait was not bounded: {waited:.0f} s"
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("error: PostgreSQL is busy: billrun waited longer than the lock "
                              "timeout (2 s, BILLRUN_LOCK_TIMEOUT)"), message  # fmt: skip
    assert f"pid {intruder.info.backend_pid} (psql-intruder" in message
    assert f"{mode.title().replace(' ', '')}Lock on billing_events" in message
    assert "safe to re-run" in message
    intruder.rollback()
    assert cli.ok("run", "status", "jan", "--json")


def test_sessions_terminated_again_and_again_end_in_one_line_and_a_re_run_completes(
    cli: Cli, store: Billing, database_url: str
) -> None:
    import_accounts(store, *(account(f"T-{i:03d}", package("p", "10.00")) for i in range(40)))
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    stop = threading.Event()

    def terminate_every_session() -> int:
        terminated = 0
        with psycopg.connect(database_url, autocommit=True) as admin:
            while not stop.is_set():
                terminated += len(admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'"
                ).fetchall())  # fmt: skip
                time.sleep(0.02)
        return terminated

    with ThreadPoolExecutor(max_workers=1) as pool:
        terminating = pool.submit(terminate_every_session)
        try:
            time.sleep(0.2)
            result = cli("run", "execute", "jan", timeout=120)
        finally:
            stop.set()
        assert terminating.result() >= 1

    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 2, result.stderr  # one message, soft-wrapped at most once
    message = " ".join(result.stderr.split())
    assert message.startswith("error: lost the connection to PostgreSQL (")
    assert "it is safe to re-run" in message
    resumed = cli.json("run", "execute", "jan", "--json")
    assert resumed["status"] == "completed"
