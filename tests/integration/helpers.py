"""Tools for the integration tests that try to break "never bill twice, never lose anything".

- scenario data: `varied_accounts(n)`, a mix of packages that bill 0..3 times in Q1 2026;
- the `billrun` CLI as a real subprocess (`run_cli`, `start_cli`);
- plain SQL against the events table, for assertions (`EventLog`);
- `WriteGate`: a table lock that lets a writer through one transaction at a time,
  so a test can kill a process at an exact point of a run without sleeping;
- `outcome(...)`: everything a run produced, without timestamps, for comparing
  an interrupted run with an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal as decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from application.billing.transactions import (
    ChargeInput,
    ContractInput,
    TerminationInput,
    UsageInput,
    add_charges,
    agree_contracts,
    record_usage,
    terminate_contracts,
)
from application.invoicing.delivery import InvoiceDelivery
from application.invoicing.documents import InvoiceDocuments
from application.shared.app import Billing
from application.shared.ports import MailChannel, Seller
from domain.billing.contracts import ContractTerms
from domain.billing.events import ChargeBilled, ContractPenaltyApplied, PackageBilled, UsageBilled
from domain.billing.terms import ChargeTerms
from domain.invoicing.events import InvoiceClosed, InvoiceOpened
from domain.invoicing.invoice import Invoice
from domain.runs.events import RunBatchCompleted
from infrastructure.database import create_database, drop_database
from infrastructure.file_store import FileStore
from infrastructure.mail import OutboxChannel
from infrastructure.persistence import eventsourcing_environment
from infrastructure.rendering.renderer import EmailTemplates, InvoiceRenderer
from infrastructure.topics import topic_of
from projections.catalog import ReadSide
from tests.conftest import TEST_SELLER, account, import_accounts, package

REPO_ROOT = Path(__file__).resolve().parents[2]
BILLRUN = Path(sys.executable).with_name("billrun")
EVENTS = "billing_events"


# Scenario data ----------------------------------------------------------------


def import_with_usage_and_charges(billing: Billing, *accounts: dict[str, Any]) -> None:
    """Import `accounts`, then give each package two usage records and each account
    a charge, a credit and a contract: one usage record and the credit fall within
    Q1 2026 (billed by a Q1 run with the package), the other record and the charge
    after it (left for a later run); the contract's penalties are due in Q1."""
    import_accounts(billing, *accounts)
    usage: list[UsageInput] = []
    charges: list[ChargeInput] = []
    for record in accounts:
        account_id, currency = record["id"], record["currency"]
        whole = currency == "JPY"
        for p in record["packages"]:
            starts = max(p["start_date"], "2026-01-15")
            later = max(p["start_date"], "2026-04-20")
            for suffix, on in (("a", starts), ("b", later)):
                if p.get("end_date") and on > p["end_date"]:
                    continue
                usage.append(
                    UsageInput(
                        where=f"{account_id}/{p['id']}/{suffix}",
                        account_id=account_id,
                        usage_id=f"{p['id']}-{suffix}",
                        package_id=p["id"],
                        quantity=decimal("12.5"),
                        occurred_on=date.fromisoformat(on),
                        unit_price=decimal("3" if whole else "0.35"),
                    )
                )
        for charge_id, on, amount in (
            ("setup", "2026-05-02", "25"),
            ("goodwill", "2026-02-10", "-4"),
        ):
            charges.append(
                ChargeInput(
                    where=f"{account_id}/{charge_id}",
                    account_id=account_id,
                    terms=ChargeTerms(
                        charge_id=charge_id,
                        description=charge_id.title(),
                        amount=decimal(amount if whole else f"{amount}.50"),
                        charge_date=date.fromisoformat(on),
                    ),
                )
            )
    record_usage(billing, usage, "test usage")
    add_charges(billing, charges, "test charges")
    # A two-month account contract each, which no account's spend meets (a shortfall
    # once its term's billing is complete), every other one terminated early (a fee).
    contracts = [
        ContractInput(
            where=record["id"],
            account_id=record["id"],
            terms=ContractTerms(
                contract_id="commitment",
                start_date=date(2026, 1, 1),
                term_months=2,
                early_termination_fee=decimal("3000" if record["currency"] == "JPY" else "30.00"),
                minimum_spend=decimal("90000000" if record["currency"] == "JPY" else "900000.00"),
                description="Commitment",
            ),
        )
        for record in accounts
    ]
    agree_contracts(billing, contracts, "test contracts")
    terminate_contracts(
        billing,
        [
            TerminationInput(record["id"], record["id"], "commitment", date(2026, 2, 15))
            for record in accounts[::2]
        ],
        "test terminations",
    )


def varied_accounts(count: int, prefix: str = "ACC") -> list[dict[str, Any]]:
    """`count` accounts whose packages bill 3, 1, 1, 1, 0 or 4 times in Q1 2026.

    Mixed currencies (EUR, USD, JPY), frequencies, timings, end dates and two
    bill groups, so an invoice's lines, totals and number all depend on getting
    every account and package period exactly once.
    """
    shapes: list[Callable[[int], list[dict[str, Any]]]] = [
        lambda i: [package("office", f"{100 + i}.00")],  # monthly advance: 3 lines
        # quarterly in arrears: bills 2026-01-01, for Q4 2025
        lambda i: [package("support", f"{30 + i}.50", "quarterly", "arrears", "2025-10-01")],
        lambda i: [package("licence", "12000", frequency="yearly", start_date="2026-02-15")],
        lambda i: [package("trial", "9.99", end_date="2026-01-31")],  # ends after January
        lambda i: [package("future", "50.00", start_date="2026-06-01")],  # nothing due
        lambda i: [
            package("office", "75.25"),
            package("parking", "10.00", start_date="2026-03-01"),
        ],
    ]
    currencies = ["EUR", "USD", "JPY", "EUR", "EUR", "USD"]
    accounts = []
    for i in range(count):
        shape = i % len(shapes)
        packages = shapes[shape](i)
        currency = currencies[shape]
        accounts.append(
            account(
                f"{prefix}-{i:04d}",
                *packages,
                currency=currency,
                bill_group="north" if i % 2 == 0 else "south",
            )
        )
    return accounts


# Databases --------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A second throwaway database beside the one the `database_url` fixture gives."""
    url = create_database(server_url)
    try:
        yield url
    finally:
        drop_database(url)


@contextlib.contextmanager
def billing_on(database_url: str, **kwargs: Any) -> Iterator[Billing]:
    app = Billing(eventsourcing_environment(database_url), **kwargs)
    try:
        yield app
    finally:
        app.close()


# The CLI as a subprocess ------------------------------------------------------


def cli_env(database_url: str, batch_size: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BILLRUN_DATABASE_URL=database_url,
        BILLRUN_BATCH_SIZE=str(batch_size),
        COLUMNS="200",
        NO_COLOR="1",
    )
    env.update(TEST_SELLER)
    return env


def start_cli(database_url: str, *args: str, batch_size: int = 5) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BILLRUN), *args],
        cwd=REPO_ROOT,
        env=cli_env(database_url, batch_size),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_cli(
    database_url: str, *args: str, batch_size: int = 5, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `billrun ARGS` to the end; fail the test (with its output) if it exits non-zero."""
    completed = subprocess.run(
        [str(BILLRUN), *args],
        cwd=REPO_ROOT,
        env=cli_env(database_url, batch_size),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, (
        f"billrun {' '.join(args)} exited {completed.returncode}\n"
        f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    return completed


def wait_until(
    condition: Callable[[], Any], timeout: float = 30, interval: float = 0.002, what: str = ""
) -> Any:
    """Poll `condition` until it returns something truthy (and return that), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


# The event log, read with SQL -------------------------------------------------


class EventLog:
    """Read-only SQL over `billing_events`, for assertions about what was committed."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True, row_factory=dict_row)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self, event_class: type) -> int:
        row = self.conn.execute(
            f"SELECT count(*) AS n FROM {EVENTS} WHERE topic = %s", (topic_of(event_class),)
        ).fetchone()
        return int(row["n"]) if row else 0

    def states(self, event_class: type) -> list[dict[str, Any]]:
        """The JSON state of every event of one type, in commit (notification) order."""
        rows = self.conn.execute(
            f"SELECT originator_id, originator_version, notification_id, "
            f"convert_from(state, 'UTF8')::jsonb AS state FROM {EVENTS} "
            "WHERE topic = %s ORDER BY notification_id",
            (topic_of(event_class),),
        ).fetchall()
        return [
            {
                **row["state"],
                "originator_id": row["originator_id"],
                "originator_version": row["originator_version"],
                "notification_id": row["notification_id"],
            }
            for row in rows
        ]

    def version(self, originator_id: Any) -> int:
        row = self.conn.execute(
            f"SELECT coalesce(max(originator_version), 0) AS v FROM {EVENTS} "
            "WHERE originator_id = %s",
            (originator_id,),
        ).fetchone()
        return int(row["v"]) if row else 0

    def total(self) -> int:
        row = self.conn.execute(f"SELECT count(*) AS n FROM {EVENTS}").fetchone()
        return int(row["n"]) if row else 0

    def package_billings(self) -> Counter[tuple[str, str, str]]:
        """How often each (account, package, bill date) was billed."""
        return Counter(
            (s["line"]["account_id"], s["package_id"], s["bill_date"])
            for s in self.states(PackageBilled)
        )

    def billed_lines(self) -> int:
        """Lines billed to accounts: package periods, usage lines and charges."""
        usage_lines = sum(len(s["lines"]) for s in self.states(UsageBilled))
        penalties = self.count(ContractPenaltyApplied)
        return self.count(PackageBilled) + usage_lines + self.count(ChargeBilled) + penalties

    def closed_numbers(self) -> list[int]:
        """Invoice numbers in the order the invoices were closed (committed)."""
        return [s["number"] for s in self.states(InvoiceClosed)]

    def batches_committed(self) -> int:
        return self.count(RunBatchCompleted)

    def session_alive(self, pid: int) -> bool:
        row = self.conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        return bool(row and row["n"])


def assert_billed_at_most_once(log: EventLog) -> None:
    twice = {key: n for key, n in log.package_billings().items() if n > 1}
    assert not twice, f"package periods billed more than once: {twice}"
    usage = Counter(
        (s["originator_id"], usage_id)
        for s in log.states(UsageBilled)
        for usage_id in s["usage_ids"]
    )
    assert not {k: n for k, n in usage.items() if n > 1}, "usage billed more than once"
    charges = Counter((s["originator_id"], s["charge_id"]) for s in log.states(ChargeBilled))
    assert not {k: n for k, n in charges.items() if n > 1}, "charges billed more than once"
    penalties = Counter(
        (s["originator_id"], s["contract_id"], s["reason"])
        for s in log.states(ContractPenaltyApplied)
    )
    assert not {k: n for k, n in penalties.items() if n > 1}, "penalties applied twice"


# Everything a run produced, minus timestamps ----------------------------------


def outcome(database_url: str, *run_ids: str) -> dict[str, Any]:
    """Invoices (id, number, account, totals, lines), package billings, runs and the
    invoice sequence of a database, as plain data without timestamps."""
    with EventLog(database_url) as log, billing_on(database_url) as billing:
        invoice_ids = [s["originator_id"] for s in log.states(InvoiceOpened)]
        invoices = billing.load_many(Invoice, invoice_ids)
        billings = sorted(
            (
                (
                    s["line"]["account_id"],
                    s["package_id"],
                    s["bill_date"],
                    s["next_bill_date"],
                    s["run_id"],
                    s["line"],
                )
                for s in log.states(PackageBilled)
            ),
            key=lambda billing: billing[:5],  # a duplicate must not make sorting fail
        )
        runs = {}
        for run_id in run_ids:
            run = billing.get_run(run_id)
            runs[run_id] = {
                "status": run.status.value,
                "accounts_in_scope": run.accounts_in_scope,
                "batches": run.batches,
                "statistics": run.statistics.model_dump(mode="json"),
            }
        usage = sorted(
            (s["originator_id"], s["package_id"], s["run_id"], s["usage_ids"], s["lines"])
            for s in log.states(UsageBilled)
        )
        charges = sorted(
            (s["originator_id"], s["charge_id"], s["run_id"], s["line"])
            for s in log.states(ChargeBilled)
        )
        penalties = sorted(
            (s["originator_id"], s["contract_id"], s["reason"], s["run_id"], s["line"])
            for s in log.states(ContractPenaltyApplied)
        )
        return {
            "invoices": {
                str(invoice_id): invoice_data(invoices[invoice_id]) for invoice_id in invoice_ids
            },
            "package_billings": billings,
            "usage_billings": usage,
            "charge_billings": charges,
            "penalties": penalties,
            "runs": runs,
            "last_invoice_number": billing.get_invoice_sequence().last_number,
        }


def invoice_data(invoice: Invoice) -> dict[str, Any]:
    return {
        "number": invoice.number,
        "account": invoice.account_id,
        "run": invoice.run_id,
        "currency": invoice.currency,
        "status": invoice.status.value,
        "posting_date": str(invoice.posting_date),
        "subtotal": str(invoice.subtotal),
        "tax": str(invoice.tax),
        "total": str(invoice.total),
        "lines": [line.model_dump(mode="json") for line in invoice.lines],
    }


# A gate that lets writers through one transaction at a time ------------------


class WriteGate:
    """Holds an EXCLUSIVE lock on the events table, which every writer needs to insert.

    Reads go on (EXCLUSIVE only conflicts with writes), so a process executing a
    run computes its next transaction and then waits, transaction open, for the
    lock. Killing the writer while it waits here crashes it at a known point:
    after the transactions let through, with the next one computed and in flight.

    `let_one_through()` passes exactly one transaction. A second connection first
    queues for the lock *behind* the waiting writer, and only then does the first
    one release it: PostgreSQL grants locks in queue order, so the writer goes
    through and the gate is shut again before the writer's next transaction can
    queue. (Releasing and re-locking on one connection would race with it.)
    """

    def __init__(self, database_url: str) -> None:
        self.monitor = psycopg.connect(database_url, autocommit=True, row_factory=dict_row)
        self._holder = psycopg.connect(database_url)
        self._spare = psycopg.connect(database_url)
        self._own_pids = [self._holder.info.backend_pid, self._spare.info.backend_pid]
        self._queue = ThreadPoolExecutor(max_workers=1)
        self._lock(self._holder)

    @staticmethod
    def _lock(conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"LOCK TABLE {EVENTS} IN EXCLUSIVE MODE")

    def waiting(self) -> list[dict[str, Any]]:
        """Client sessions of this database waiting for the events table (or for an
        advisory lock, which is how processes queue for creating the schema).

        Only other clients' backends count: autovacuum also queues here (its
        ANALYZE conflicts with the EXCLUSIVE lock), and so does the gate itself.
        """
        return self.monitor.execute(
            "SELECT a.pid, a.query, l.locktype "
            "FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            f"AND (l.relation = '{EVENTS}'::regclass OR l.locktype = 'advisory') "
            "AND a.backend_type = 'client backend' AND NOT l.granted "
            "AND a.pid <> ALL(%s) ORDER BY a.pid",
            (self._own_pids,),
        ).fetchall()

    def _queued(self, pid: int) -> bool:
        row = self.monitor.execute(
            "SELECT count(*) AS n FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)
        ).fetchone()
        return bool(row and row["n"])

    def wait_for_writer(self, process: subprocess.Popen[str]) -> dict[str, Any]:
        """The one session waiting at the gate (`process`'s), once there is one."""
        (waiting,) = self.wait_for_waiting(1, [process])
        return waiting

    def wait_for_waiting(
        self, count: int, processes: list[subprocess.Popen[str]], timeout: float = 30
    ) -> list[dict[str, Any]]:
        """Wait until exactly `count` sessions are queued at the gate; fail at once,
        with its output, if one of `processes` exits instead."""

        def queued() -> list[dict[str, Any]] | None:
            for process in processes:
                if process.poll() is not None:
                    out, err = process.communicate()
                    raise AssertionError(
                        f"billrun exited {process.returncode} before reaching the gate\n"
                        f"stdout:\n{out}\nstderr:\n{err}"
                    )
            waiting = self.waiting()
            assert len(waiting) <= count, waiting
            return [dict(w) for w in waiting] if len(waiting) == count else None

        return list(wait_until(queued, timeout, what=f"{count} sessions at the gate"))

    def let_one_through(self) -> None:
        """Let the waiting writer commit one transaction; return once it has."""
        spare = self._spare
        locked = self._queue.submit(self._lock, spare)
        wait_until(
            lambda: locked.done() or self._queued(spare.info.backend_pid),
            what="the gate to queue behind the writer",
        )
        self._holder.commit()
        locked.result(timeout=30)  # granted once the writer's transaction has ended
        self._holder, self._spare = spare, self._holder

    def open(self) -> None:
        self._holder.commit()

    def close(self) -> None:
        for conn in (self._holder, self._spare):
            with contextlib.suppress(psycopg.Error):
                conn.commit()
            conn.close()
        self._queue.shutdown()
        self.monitor.close()


class FileDeliveryWorld:
    """Billing with documents rendered for real and delivered by the file channel
    (an outbox folder under `home`), and the read side: what review and credit-note
    tests share."""

    def __init__(self, billing: Billing, es_env: dict[str, str], home: Path) -> None:
        self.billing = billing
        self.outbox = home / "outbox"
        store = FileStore(home / "documents")
        self.documents = InvoiceDocuments(billing, InvoiceRenderer(), store, Seller())
        channels: dict[str, MailChannel] = {"file": OutboxChannel(self.outbox)}
        self.delivery = InvoiceDelivery(billing, store, channels, EmailTemplates(), Seller())
        self.read_side = ReadSide(billing, es_env)
