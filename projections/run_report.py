"""The run report read model: what each step of a run produced, per charge type
and currency, which accounts were billed or skipped, and how long it took."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed

from domain.account import PackageBilled
from domain.bill_run import RunBatchCompleted, RunCompleted, RunScheduled, RunStarted
from domain.invoice import InvoiceClosed, InvoiceOpened
from domain.model import DomainEvent
from projections.view import View, ViewProjection

Key = tuple[str, str, str, str]  # run id, step, kind, currency


class RunReportView(View):
    name = "run_report"
    version = 1
    tables = ("run_report", "run_batches", "run_timing")

    def schema(self) -> list[Composed]:
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, step text NOT NULL, "
                "kind text NOT NULL, currency text NOT NULL, count bigint NOT NULL, "
                "amount numeric NOT NULL, PRIMARY KEY (run_id, step, kind, currency))"
            ).format(self.table("run_report")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, batch int NOT NULL, "
                "completed_at timestamptz NOT NULL, seconds numeric NOT NULL, "
                "accounts_scanned int NOT NULL, accounts_billed int NOT NULL, "
                "accounts_skipped int NOT NULL, invoices int NOT NULL, "
                "PRIMARY KEY (run_id, batch))"
            ).format(self.table("run_batches")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (aggregate_id uuid PRIMARY KEY, "
                "run_id text UNIQUE NOT NULL, scheduled_at timestamptz NOT NULL, "
                "started_at timestamptz, last_checkpoint_at timestamptz, "
                "completed_at timestamptz, accounts_in_scope bigint)"
            ).format(self.table("run_timing")),
        ]

    def write(self, curs: Cursor[DictRow], events: Sequence[DomainEvent]) -> None:
        totals: dict[Key, list[Any]] = {}
        for event in events:
            if isinstance(event, PackageBilled):
                line = event.line
                self._add(totals, (event.run_id, "bill_packages", "recurring", line.currency),
                          line.amount)  # fmt: skip
            elif isinstance(event, InvoiceOpened):
                self._add(totals, (event.run_id, "invoices", "opened", event.currency), Decimal(0))
            elif isinstance(event, InvoiceClosed):
                self._add(totals, (event.run_id, "invoices", "closed", event.currency), event.total)
            else:
                self._write_run_event(curs, event)
        if totals:
            curs.executemany(
                SQL(
                    "INSERT INTO {} AS t VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (run_id, step, kind, currency) DO UPDATE SET "
                    "count = t.count + excluded.count, amount = t.amount + excluded.amount"
                ).format(self.table("run_report")),
                [(*key, count, amount) for key, (count, amount) in totals.items()],
            )

    @staticmethod
    def _add(totals: dict[Key, list[Any]], key: Key, amount: Decimal) -> None:
        entry = totals.setdefault(key, [0, Decimal(0)])
        entry[0] += 1
        entry[1] += amount

    def _write_run_event(self, curs: Cursor[DictRow], event: DomainEvent) -> None:
        timing = self.table("run_timing")
        if isinstance(event, RunScheduled):
            curs.execute(
                SQL("INSERT INTO {} (aggregate_id, run_id, scheduled_at) VALUES (%s, %s, %s)")
                .format(timing),
                (event.originator_id, event.run_id, event.timestamp),
            )  # fmt: skip
        elif isinstance(event, RunStarted):
            curs.execute(
                SQL(
                    "UPDATE {} SET started_at = %s, last_checkpoint_at = %s, "
                    "accounts_in_scope = %s WHERE aggregate_id = %s"
                ).format(timing),
                (event.timestamp, event.timestamp, event.accounts_in_scope, event.originator_id),
            )
        elif isinstance(event, RunBatchCompleted):
            self._write_batch(curs, event)
        elif isinstance(event, RunCompleted):
            curs.execute(
                SQL("UPDATE {} SET completed_at = %s WHERE aggregate_id = %s").format(timing),
                (event.timestamp, event.originator_id),
            )

    def _write_batch(self, curs: Cursor[DictRow], event: RunBatchCompleted) -> None:
        timing = self.table("run_timing")
        curs.execute(
            SQL("SELECT run_id, last_checkpoint_at FROM {} WHERE aggregate_id = %s").format(timing),
            (event.originator_id,),
        )
        row = curs.fetchone()
        if row is None:
            raise LookupError(f"run report has no run {event.originator_id}")
        curs.execute(
            SQL("UPDATE {} SET last_checkpoint_at = %s WHERE aggregate_id = %s").format(timing),
            (event.timestamp, event.originator_id),
        )
        previous: datetime = row["last_checkpoint_at"]
        stats = event.statistics
        curs.execute(
            SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(
                self.table("run_batches")
            ),
            (row["run_id"], event.batch, event.timestamp,
             Decimal(str((event.timestamp - previous).total_seconds())),
             stats.accounts_scanned, stats.accounts_billed, stats.accounts_skipped,
             stats.invoices),
        )  # fmt: skip

    # Queries ------------------------------------------------------------------

    def report(self, run_id: str) -> dict[str, Any] | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {} WHERE run_id = %s").format(self.table("run_timing")),
                (run_id,),
            )
            timing = curs.fetchone()
            if timing is None:
                return None
            curs.execute(
                SQL(
                    "SELECT step, kind, currency, count, amount FROM {} WHERE run_id = %s "
                    "ORDER BY step, kind, currency"
                ).format(self.table("run_report")),
                (run_id,),
            )
            rows = curs.fetchall()
            curs.execute(
                SQL(
                    "SELECT count(*) AS batches, coalesce(sum(accounts_scanned), 0) AS scanned, "
                    "coalesce(sum(accounts_billed), 0) AS billed, "
                    "coalesce(sum(accounts_skipped), 0) AS skipped, "
                    "coalesce(sum(invoices), 0) AS invoices, "
                    "max(seconds) AS slowest, avg(seconds) AS mean FROM {} WHERE run_id = %s"
                ).format(self.table("run_batches")),
                (run_id,),
            )
            batches = curs.fetchone()
        assert batches is not None
        return _report(run_id, timing, rows, batches)


def _report(
    run_id: str, timing: dict[str, Any], rows: list[dict[str, Any]], batches: dict[str, Any]
) -> dict[str, Any]:
    started, completed = timing["started_at"], timing["completed_at"]
    seconds = (completed - started).total_seconds() if started and completed else None
    per_currency: dict[str, dict[str, str | int]] = {}
    per_charge_type: dict[str, dict[str, Any]] = {}
    for row in rows:
        currency = per_currency.setdefault(row["currency"], {})
        if row["step"] == "bill_packages":
            currency["lines"] = int(currency.get("lines", 0)) + row["count"]
            currency["billed"] = str(row["amount"])
            kind = per_charge_type.setdefault(row["kind"], {"lines": 0, "amounts": {}})
            kind["lines"] += row["count"]
            kind["amounts"][row["currency"]] = str(row["amount"])
        elif row["kind"] == "closed":
            currency["invoices"] = row["count"]
            currency["invoiced"] = str(row["amount"])
    return {
        "run_id": run_id,
        "status": "completed" if completed else ("running" if started else "scheduled"),
        "accounts": {
            "in_scope": timing["accounts_in_scope"],
            "scanned": batches["scanned"],
            "billed": batches["billed"],
            "skipped_nothing_due": batches["skipped"],
        },
        "steps": [
            {
                "step": row["step"],
                "kind": row["kind"],
                "currency": row["currency"],
                "count": row["count"],
                "amount": str(row["amount"]),
            }
            for row in rows
        ],
        "per_currency": per_currency,
        "per_charge_type": per_charge_type,
        "timings": {
            "scheduled_at": timing["scheduled_at"].isoformat(),
            "started_at": started.isoformat() if started else None,
            "completed_at": completed.isoformat() if completed else None,
            "seconds": seconds,
            "batches": batches["batches"],
            "slowest_batch_seconds": float(batches["slowest"]) if batches["slowest"] else None,
            "mean_batch_seconds": float(batches["mean"]) if batches["mean"] else None,
            "accounts_per_second": round(batches["scanned"] / seconds, 1) if seconds else None,
        },
    }


class RunReportProjection(ViewProjection):
    name = RunReportView.versioned_name()
    topics = tuple(
        get_topic(e)
        for e in (
            PackageBilled, InvoiceOpened, InvoiceClosed,
            RunScheduled, RunStarted, RunBatchCompleted, RunCompleted,
        )
    )  # fmt: skip
