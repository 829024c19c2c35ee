"""The run-status read model: each bill run's state, progress and statistics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed
from psycopg.types.json import Jsonb

from domain.runs import events as run_events
from domain.shared.model import DomainEvent
from domain.shared.money import plain
from infrastructure.topics import topic_of
from projections.view import View, ViewProjection

_COUNTERS = ("accounts_scanned", "accounts_seen", "accounts_billed", "accounts_skipped",
             "accounts_parked", "invoices", "lines", "invoices_left_open", "invoices_released",
             "dunning_applied", "accounts_suspended")  # fmt: skip
"""`BatchStatistics` counters, summed over the run's billing, closing and retry batches."""
_STATUS_OF: dict[type[DomainEvent], str] = {
    run_events.RunClosingStarted: "closing",
    run_events.RunCollectionStarted: "collecting",
    run_events.RunCancelled: "cancelled",
}
"""Events that only move a run to a status (`closing` and `collecting` are phases of
`running`, shown as statuses)."""
_COLLECTION = ("attempts", "approved", "declined", "errors", "pending")
"""`CollectionStatistics` counters, summed over the collection batches (columns
`collection_<name>`)."""


class RunStatusView(View):
    name = "runs"
    version = 4
    """2: a run's settings (which steps, which categories), invoices left open and
    released, and the closing pass of `after_each_bill_run` groups; the schedule
    occurrence that queued a run, whether it is disabled and its manager's lease.
    3: the AR steps: dunning stages applied and accounts suspended, the collection
    pass (status `collecting`, attempts and outcomes, amounts collected per currency),
    failed runs (status `failed` with the reason, back to where they were when
    resumed), and the statistics of parked accounts billed by a retry.
    4: totals per currency as net, tax and gross (`run_totals`), the same in the
    base currency (`run_base_totals`), and accounts parked."""
    tables = ("runs", "run_totals", "run_collected", "run_base_totals")

    def schema(self) -> list[Composed]:
        counters = ", ".join(
            [f"{c} bigint NOT NULL DEFAULT 0" for c in _COUNTERS]
            + [f"collection_{c} bigint NOT NULL DEFAULT 0" for c in _COLLECTION]
        )
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "run_id text PRIMARY KEY, aggregate_id uuid UNIQUE NOT NULL, status text NOT NULL, "
                "period_start date NOT NULL, "
                "period_end date NOT NULL, posting_date date NOT NULL, selection jsonb NOT NULL, "
                "settings jsonb NOT NULL, "
                "accounts_in_scope bigint NOT NULL DEFAULT 0, batches int NOT NULL DEFAULT 0, "
                "first_invoice_number bigint, last_invoice_number bigint, "
                + counters
                + ", scheduled_at timestamptz NOT NULL, started_at timestamptz, "
                "completed_at timestamptz, updated_at timestamptz NOT NULL, "
                "schedule text, occurrence timestamptz, disabled boolean NOT NULL DEFAULT false, "
                "lease_holder text, lease_expires_at timestamptz, "
                "collection_batches int NOT NULL DEFAULT 0, failure text, "
                "status_before_failure text)"
            ).format(self.table("runs")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, currency text NOT NULL, "
                "amount numeric NOT NULL, tax numeric NOT NULL DEFAULT 0, "
                "gross numeric NOT NULL DEFAULT 0, PRIMARY KEY (run_id, currency))"
            ).format(self.table("run_totals")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, currency text NOT NULL, "
                "net numeric NOT NULL, tax numeric NOT NULL, gross numeric NOT NULL, "
                "PRIMARY KEY (run_id, currency))"
            ).format(self.table("run_base_totals")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, currency text NOT NULL, "
                "amount numeric NOT NULL, PRIMARY KEY (run_id, currency))"
            ).format(self.table("run_collected")),
        ]

    def write(self, curs: Cursor[DictRow], events: Sequence[DomainEvent]) -> None:
        runs = self.table("runs")
        for event in events:
            if isinstance(event, run_events.RunScheduled):
                curs.execute(
                    SQL(
                        "INSERT INTO {} (run_id, aggregate_id, status, period_start, period_end, "
                        "posting_date, selection, settings, scheduled_at, updated_at, schedule, "
                        "occurrence) "
                        "VALUES (%s, %s, 'scheduled', %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    ).format(runs),
                    (event.run_id, event.originator_id, event.period_start, event.period_end,
                     event.posting_date, Jsonb(event.selection.model_dump(mode="json")),
                     Jsonb(event.settings.model_dump(mode="json")), event.timestamp,
                     event.timestamp, event.origin.schedule if event.origin else None,
                     event.origin.occurrence if event.origin else None),
                )  # fmt: skip
            elif isinstance(event, run_events.RunStarted):
                curs.execute(
                    SQL(
                        "UPDATE {} SET status = 'running', accounts_in_scope = %s, "
                        "started_at = %s, updated_at = %s WHERE aggregate_id = %s"
                    ).format(runs),
                    (event.accounts_in_scope, event.timestamp, event.timestamp,
                     event.originator_id),
                )  # fmt: skip
            elif isinstance(event, run_events.RunBatchCompleted):
                self._add_batch(curs, event, event.batch)
            elif type(event) in _STATUS_OF:
                curs.execute(
                    SQL("UPDATE {} SET status = %s, updated_at = %s WHERE aggregate_id = %s")
                    .format(runs),
                    (_STATUS_OF[type(event)], event.timestamp, event.originator_id),
                )  # fmt: skip
            elif isinstance(
                event, run_events.RunClosingBatchCompleted | run_events.ParkedAccountBilled
            ):
                self._add_batch(curs, event, None)
            elif isinstance(event, run_events.RunCollectionBatchCompleted):
                self._add_collection_batch(curs, event)
            elif isinstance(event, run_events.RunFailed | run_events.RunResumed):
                self._fail_or_resume(curs, event)
            elif isinstance(event, run_events.RunCompleted):
                curs.execute(
                    SQL(
                        "UPDATE {} SET status = 'completed', completed_at = %s, updated_at = %s, "
                        "lease_holder = NULL, lease_expires_at = NULL WHERE aggregate_id = %s"
                    ).format(runs),
                    (event.timestamp, event.timestamp, event.originator_id),
                )
            elif isinstance(event, run_events.RunDisabled | run_events.RunEnabled):
                disabled = isinstance(event, run_events.RunDisabled)
                curs.execute(
                    SQL("UPDATE {} SET disabled = %s, updated_at = %s WHERE aggregate_id = %s")
                    .format(runs),
                    (disabled, event.timestamp, event.originator_id),
                )  # fmt: skip
            elif isinstance(event, run_events.RunLeased | run_events.RunLeaseReleased):
                expires = event.expires_at if isinstance(event, run_events.RunLeased) else None
                curs.execute(
                    SQL(
                        "UPDATE {} SET lease_holder = %s, lease_expires_at = %s, updated_at = %s "
                        "WHERE aggregate_id = %s"
                    ).format(runs),
                    (event.holder if expires else None, expires, event.timestamp,
                     event.originator_id),
                )  # fmt: skip

    def _fail_or_resume(
        self, curs: Cursor[DictRow], event: run_events.RunFailed | run_events.RunResumed
    ) -> None:
        """A failed run remembers where it was (`closing`, `collecting`, ...), to be
        there again when resumed, as the aggregate does."""
        if isinstance(event, run_events.RunFailed):
            statement = SQL(
                "UPDATE {} SET status_before_failure = status, status = 'failed', "
                "failure = %s, lease_holder = NULL, lease_expires_at = NULL, "
                "updated_at = %s WHERE aggregate_id = %s"
            )
            params: tuple[Any, ...] = (event.reason, event.timestamp, event.originator_id)
        else:
            statement = SQL(
                "UPDATE {} SET status = coalesce(status_before_failure, status), "
                "status_before_failure = NULL, failure = NULL, updated_at = %s "
                "WHERE aggregate_id = %s"
            )
            params = (event.timestamp, event.originator_id)
        curs.execute(statement.format(self.table("runs")), params)

    def _add_batch(
        self,
        curs: Cursor[DictRow],
        event: run_events.RunBatchCompleted
        | run_events.RunClosingBatchCompleted
        | run_events.ParkedAccountBilled,
        batch: int | None,
    ) -> None:
        """Add a batch's statistics; `batch` None: a closing batch or a retried parked
        account, not counted as a batch."""
        stats = event.statistics
        increments = ", ".join(f"{c} = {c} + %s" for c in _COUNTERS)
        curs.execute(
            SQL(
                "UPDATE {} SET batches = coalesce(%s, batches), " + increments + ", "
                "first_invoice_number = coalesce(first_invoice_number, %s), "
                "last_invoice_number = coalesce(%s, last_invoice_number), "
                "updated_at = %s WHERE aggregate_id = %s RETURNING run_id"
            ).format(self.table("runs")),
            (batch, *(getattr(stats, c) for c in _COUNTERS),
             event.first_invoice_number, event.last_invoice_number, event.timestamp,
             event.originator_id),
        )  # fmt: skip
        row = curs.fetchone()
        if row is None:
            raise LookupError(f"run-status view has no run {event.originator_id}")
        run_id = row["run_id"]
        for currency, amount in stats.totals.items():
            # Events recorded before tax and gross were kept: gross unknown, so net.
            tax = stats.tax_totals.get(currency, Decimal(0))
            gross = stats.gross_totals.get(currency, amount + tax)
            curs.execute(
                SQL(
                    "INSERT INTO {} AS t VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (run_id, currency) DO UPDATE SET "
                    "amount = t.amount + excluded.amount, tax = t.tax + excluded.tax, "
                    "gross = t.gross + excluded.gross"
                ).format(self.table("run_totals")),
                (run_id, currency, amount, tax, gross),
            )
        for currency, base in stats.base_totals.items():
            curs.execute(
                SQL(
                    "INSERT INTO {} AS t VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (run_id, currency) DO UPDATE SET "
                    "net = t.net + excluded.net, tax = t.tax + excluded.tax, "
                    "gross = t.gross + excluded.gross"
                ).format(self.table("run_base_totals")),
                (run_id, currency, base["net"], base["tax"], base["gross"]),
            )

    def _add_collection_batch(
        self, curs: Cursor[DictRow], event: run_events.RunCollectionBatchCompleted
    ) -> None:
        stats = event.statistics
        increments = ", ".join(f"collection_{c} = collection_{c} + %s" for c in _COLLECTION)
        curs.execute(
            SQL(
                "UPDATE {} SET collection_batches = %s, " + increments + ", updated_at = %s "
                "WHERE aggregate_id = %s RETURNING run_id"
            ).format(self.table("runs")),
            (event.batch, *(getattr(stats, c) for c in _COLLECTION), event.timestamp,
             event.originator_id),
        )  # fmt: skip
        row = curs.fetchone()
        if row is None:
            raise LookupError(f"run-status view has no run {event.originator_id}")
        for currency, amount in stats.collected.items():
            curs.execute(
                SQL(
                    "INSERT INTO {} AS t VALUES (%s, %s, %s) ON CONFLICT (run_id, currency) "
                    "DO UPDATE SET amount = t.amount + excluded.amount"
                ).format(self.table("run_collected")),
                (row["run_id"], currency, amount),
            )

    # Queries ------------------------------------------------------------------

    def get(self, run_id: str) -> RunRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT * FROM {} WHERE run_id = %s").format(self.table("runs")),
                         (run_id,))  # fmt: skip
            row = curs.fetchone()
            if row is None:
                return None
            totals = self._totals(curs, "run_totals", run_id).get(run_id, {})
            base = self._totals(curs, "run_base_totals", run_id).get(run_id, {})
            collected = self._collected(curs, run_id).get(run_id, {})
        return RunRow.from_row(row, totals, collected, base)

    def all(self) -> list[RunRow]:
        """Every run, newest first."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {} ORDER BY scheduled_at DESC").format(self.table("runs"))
            )
            rows = curs.fetchall()
            totals = self._totals(curs, "run_totals", None)
            base = self._totals(curs, "run_base_totals", None)
            collected = self._collected(curs, None)
        return [
            RunRow.from_row(
                row,
                totals.get(row["run_id"], {}),
                collected.get(row["run_id"], {}),
                base.get(row["run_id"], {}),
            )
            for row in rows
        ]

    def _totals(
        self, curs: Cursor[DictRow], table: str, run_id: str | None
    ) -> dict[str, dict[str, dict[str, Decimal | None]]]:
        """Per run and currency: `{"net", "tax", "gross"}` (tables built before version
        4 kept the net amount only, shown as net with tax and gross unknown)."""
        if self.built_version < 4 and table == "run_base_totals":
            return {}
        where = SQL("WHERE run_id = %s") if run_id is not None else SQL("")
        curs.execute(
            SQL("SELECT * FROM {} {} ORDER BY run_id, currency").format(self.table(table), where),
            (run_id,) if run_id is not None else (),
        )
        found: dict[str, dict[str, dict[str, Decimal | None]]] = {}
        for row in curs.fetchall():
            net = row.get("net", row.get("amount"))
            found.setdefault(row["run_id"], {})[row["currency"]] = {
                "net": net, "tax": row.get("tax"), "gross": row.get("gross"),
            }  # fmt: skip
        return found

    def _collected(
        self, curs: Cursor[DictRow], run_id: str | None
    ) -> dict[str, dict[str, Decimal]]:
        """Amounts collected per run and currency (none from tables built before
        version 3, which did not keep them)."""
        if self.built_version < 3:
            return {}
        where = SQL("WHERE run_id = %s") if run_id is not None else SQL("")
        curs.execute(
            SQL("SELECT * FROM {} {} ORDER BY run_id, currency").format(
                self.table("run_collected"), where
            ),
            (run_id,) if run_id is not None else (),
        )
        found: dict[str, dict[str, Decimal]] = {}
        for row in curs.fetchall():
            found.setdefault(row["run_id"], {})[row["currency"]] = row["amount"]
        return found


@dataclass(frozen=True)
class RunRow:
    run_id: str
    status: str
    period_start: date
    period_end: date
    posting_date: date
    selection: dict[str, Any]
    settings: dict[str, Any] | None
    """`RunSettings` as JSON: which steps the run performs, which categories it bills
    (None: served from a version 1 table, which did not keep them)."""
    accounts_in_scope: int
    batches: int
    counters: dict[str, int]
    first_invoice_number: int | None
    last_invoice_number: int | None
    totals: dict[str, dict[str, Decimal | None]]
    """Closed invoices per currency: `{"net", "tax", "gross"}` (tax and gross None
    when served from a table built before version 4)."""
    scheduled_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    schedule: str | None = None
    """The schedule that queued the run (None: scheduled by hand)."""
    occurrence: datetime | None = None
    disabled: bool = False
    lease_holder: str | None = None
    """The manager executing the run, while its lease is held."""
    lease_expires_at: datetime | None = None
    collection: dict[str, Any] | None = None
    """The collection pass: batches, attempts, approved, declined, errors, pending
    and `collected` per currency (zeros until the run collects)."""
    failure: str | None = None
    """Why the run failed, while it is failed."""
    base_totals: dict[str, dict[str, Decimal | None]] | None = None
    """The same in the base currency (empty: no base currency set)."""

    @classmethod
    def from_row(
        cls,
        row: dict[str, Any],
        totals: dict[str, dict[str, Decimal | None]],
        collected: dict[str, Decimal] | None = None,
        base_totals: dict[str, dict[str, Decimal | None]] | None = None,
    ) -> RunRow:
        return cls(
            run_id=row["run_id"],
            status=row["status"],
            period_start=row["period_start"],
            period_end=row["period_end"],
            posting_date=row["posting_date"],
            selection=row["selection"],
            # Version 1 did not keep settings: unknown (None) until it is rebuilt.
            settings=row.get("settings"),
            accounts_in_scope=row["accounts_in_scope"],
            batches=row["batches"],
            # Version 1 tables lack the newer counters: 0 until rebuilt.
            counters={c: row.get(c, 0) for c in _COUNTERS},
            first_invoice_number=row["first_invoice_number"],
            last_invoice_number=row["last_invoice_number"],
            totals=totals,
            scheduled_at=row["scheduled_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            # Tables built before schedules lack these columns.
            schedule=row.get("schedule"),
            occurrence=row.get("occurrence"),
            disabled=bool(row.get("disabled", False)),
            lease_holder=row.get("lease_holder"),
            lease_expires_at=row.get("lease_expires_at"),
            # Tables built before version 3 lack the AR steps: zeros until rebuilt.
            collection={
                "batches": row.get("collection_batches", 0),
                **{c: row.get(f"collection_{c}", 0) for c in _COLLECTION},
                "collected": dict(collected or {}),
            },
            failure=row.get("failure"),
            base_totals=dict(base_totals or {}),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "posting_date": self.posting_date.isoformat(),
            "selection": self.selection,
            "settings": self.settings,
            "accounts_in_scope": self.accounts_in_scope,
            "batches": self.batches,
            **self.counters,
            "first_invoice_number": self.first_invoice_number,
            "last_invoice_number": self.last_invoice_number,
            "totals": totals_json(self.totals),
            "base_totals": totals_json(self.base_totals or {}),
            "scheduled_at": self.scheduled_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "schedule": self.schedule,
            "occurrence": self.occurrence.isoformat() if self.occurrence else None,
            "disabled": self.disabled,
            "lease_holder": self.lease_holder,
            "lease_expires_at": (
                self.lease_expires_at.isoformat() if self.lease_expires_at else None
            ),
            "collection": _collection_json(self.collection),
            "failure": self.failure,
        }


def totals_json(totals: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str | None]]:
    """`{currency: {"net": "600.00", "tax": "120.00", "gross": "720.00"}}`: labelled,
    as a bare figure next to a currency was read as the invoices' total."""
    return {
        currency: {k: None if v is None else plain(v) for k, v in amounts.items()}
        for currency, amounts in totals.items()
    }


def _collection_json(collection: dict[str, Any] | None) -> dict[str, Any]:
    found = collection or {}
    return {
        "batches": found.get("batches", 0),
        **{c: found.get(c, 0) for c in _COLLECTION},
        "collected": {
            currency: str(amount) for currency, amount in found.get("collected", {}).items()
        },
    }


class RunStatusProjection(ViewProjection):
    name = RunStatusView.versioned_name()
    topics = tuple(
        topic_of(e)
        for e in (
            run_events.RunScheduled,
            run_events.RunStarted,
            run_events.RunBatchCompleted,
            run_events.RunClosingStarted,
            run_events.RunClosingBatchCompleted,
            run_events.ParkedAccountBilled,
            run_events.RunCollectionStarted,
            run_events.RunCollectionBatchCompleted,
            run_events.RunFailed,
            run_events.RunResumed,
            run_events.RunCompleted,
            run_events.RunCancelled,
            run_events.RunDisabled,
            run_events.RunEnabled,
            run_events.RunLeased,
            run_events.RunLeaseReleased,
        )
    )
