"""The run report read model: what each step of a run billed (lines, amounts and
line tax per step, category and currency), the tax rounding that makes the
lines' tax its invoices' tax, what it invoiced, which accounts were billed or
skipped, and how long it took.

Tax rule (docs/einvoicing.md, "A run reports its invoices' tax"): an invoice taxes each
rate's taxable amount and rounds once (BR-CO-17), while each line keeps its own
rounded tax. Step and category rows show the lines' own tax, labelled line tax;
each closed invoice's difference between its tax and its lines' tax is the run's
`tax_rounding` (under the run that closed it); a currency's tax is line tax plus
rounding, so it is its invoices' tax and the rows still add up to it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Literal
from psycopg.types.json import Jsonb

from domain.billing.events import ChargeBilled, ContractPenaltyApplied, PackageBilled, UsageBilled
from domain.billing.lines import DEFAULT_PACKAGE_CATEGORY, InvoiceLine
from domain.invoicing.events import InvoiceClosed, InvoiceLineAdded, InvoiceOpened
from domain.runs.events import RunBatchCompleted, RunCompleted, RunScheduled, RunStarted
from domain.shared.model import DomainEvent
from infrastructure.topics import topic_of
from projections.open_invoice_tax import OpenInvoiceTax
from projections.view import View, ViewProjection

Key = tuple[str, str, str, str, str]  # run id, step, kind, category, currency

STEPS = ("bill_packages", "bill_usage", "bill_charges", "run_contracts")
"""The billing steps, in the order a run performs them (its settings name them)."""
INVOICES = "invoices"
"""The pseudo-step of invoice rows: kind `opened`, `closed` or `tax_rounding`, no
category."""
TAX_ROUNDING = "tax_rounding"
"""The kind of invoice row whose tax is, per closing run and currency, the closed
invoices' tax less their lines' own tax (rates taxed and rounded once, BR-CO-17)."""


class RunReportView(View):
    name = "run_report"
    version = 3
    """2: lines of usage and charges, per category, with tax; the run's settings.
    3: the tax rounding of the invoices a run closed (their tax less their lines'
    tax), so a currency's tax is its invoices' tax; open invoices' line tax."""
    tables = ("run_report", "run_batches", "run_timing", "open_invoice_tax")

    def schema(self) -> list[Composed]:
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, step text NOT NULL, "
                "kind text NOT NULL, category text NOT NULL, currency text NOT NULL, "
                "count bigint NOT NULL, amount numeric NOT NULL, tax numeric NOT NULL, "
                "PRIMARY KEY (run_id, step, kind, category, currency))"
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
                "run_id text UNIQUE NOT NULL, settings jsonb NOT NULL, "
                "scheduled_at timestamptz NOT NULL, "
                "started_at timestamptz, last_checkpoint_at timestamptz, "
                "completed_at timestamptz, accounts_in_scope bigint)"
            ).format(self.table("run_timing")),
            # The line tax of invoices still open, until they close: an invoice's
            # lines may be added by earlier batches (or runs) than the one closing it.
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (invoice_id uuid PRIMARY KEY, "
                "line_tax numeric NOT NULL)"
            ).format(self.table("open_invoice_tax")),
        ]

    def write(self, curs: Cursor[DictRow], events: Sequence[DomainEvent]) -> None:
        """Lines are counted under the step that billed them (the account event),
        invoices under `invoices`; a batch's sums go in with one upsert per key."""
        totals: dict[Key, list[Any]] = {}
        line_tax = OpenInvoiceTax()
        for event in events:
            if isinstance(event, PackageBilled):
                self._add_lines(totals, event.run_id, "bill_packages", [event.line])
            elif isinstance(event, UsageBilled):
                self._add_lines(totals, event.run_id, "bill_usage", event.lines)
            elif isinstance(event, ChargeBilled):
                self._add_lines(totals, event.run_id, "bill_charges", [event.line])
            elif isinstance(event, ContractPenaltyApplied):
                self._add_lines(totals, event.run_id, "run_contracts", [event.line])
            elif isinstance(event, InvoiceOpened | InvoiceLineAdded | InvoiceClosed):
                self._add_invoice_event(totals, line_tax, event)
            else:
                self._write_run_event(curs, event)
        for closed, rounding in line_tax.roundings(curs, self.table("open_invoice_tax")):
            if rounding and closed.document_type == "invoice":
                key = (closed.closed_by_run or closed.run_id, INVOICES, TAX_ROUNDING, "",
                       closed.currency)  # fmt: skip
                self._add(totals, key, Decimal(0), rounding)
        if totals:
            curs.executemany(
                SQL(
                    "INSERT INTO {} AS t VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (run_id, step, kind, category, currency) DO UPDATE SET "
                    "count = t.count + excluded.count, amount = t.amount + excluded.amount, "
                    "tax = t.tax + excluded.tax"
                ).format(self.table("run_report")),
                [(*key, count, amount, tax) for key, (count, amount, tax) in totals.items()],
            )

    @classmethod
    def _add_invoice_event(
        cls,
        totals: dict[Key, list[Any]],
        line_tax: OpenInvoiceTax,
        event: InvoiceOpened | InvoiceLineAdded | InvoiceClosed,
    ) -> None:
        """Invoices opened and closed, under `invoices`; every invoice's line tax,
        to tell its tax rounding when it closes."""
        if isinstance(event, InvoiceLineAdded):
            line_tax.add(event.originator_id, event.line.tax)
            return
        if isinstance(event, InvoiceClosed):
            line_tax.close(event)
        if event.document_type != "invoice":
            return  # a credit note, issued later under the invoice's run: not the run's billing
        if isinstance(event, InvoiceOpened):
            key = (event.run_id, INVOICES, "opened", "", event.currency)
            cls._add(totals, key, Decimal(0), Decimal(0))
        else:
            # Under the run that closed it (close types may close a later run).
            closer = event.closed_by_run or event.run_id
            key = (closer, INVOICES, "closed", "", event.currency)
            cls._add(totals, key, event.subtotal, event.tax)

    @classmethod
    def _add_lines(
        cls, totals: dict[Key, list[Any]], run_id: str, step: str, lines: Iterable[InvoiceLine]
    ) -> None:
        for line in lines:
            key = (run_id, step, str(line.kind), line.category, line.currency)
            cls._add(totals, key, line.amount, line.tax)

    @staticmethod
    def _add(totals: dict[Key, list[Any]], key: Key, amount: Decimal, tax: Decimal) -> None:
        entry = totals.setdefault(key, [0, Decimal(0), Decimal(0)])
        entry[0] += 1
        entry[1] += amount
        entry[2] += tax

    def _write_run_event(self, curs: Cursor[DictRow], event: DomainEvent) -> None:
        timing = self.table("run_timing")
        if isinstance(event, RunScheduled):
            curs.execute(
                SQL("INSERT INTO {} (aggregate_id, run_id, settings, scheduled_at) "
                    "VALUES (%s, %s, %s, %s)").format(timing),
                (event.originator_id, event.run_id,
                 Jsonb(event.settings.model_dump(mode="json")), event.timestamp),
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
        """The run's report as JSON-ready data (money as strings), or None if unknown."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT * FROM {} WHERE run_id = %s").format(self.table("run_timing")),
                (run_id,),
            )
            timing = curs.fetchone()
            if timing is None:
                return None
            columns: Composable = SQL("category, tax")
            if self.built_version < 2:
                # Version 1 is served until rebuilt: package lines, before categories and
                # tax, which the domain reads as `services` and 0 (as a rebuild would).
                columns = SQL(
                    "CASE WHEN step = 'bill_packages' THEN {} ELSE '' END AS category, "
                    "0::numeric AS tax"
                ).format(Literal(DEFAULT_PACKAGE_CATEGORY))
            curs.execute(
                SQL(
                    "SELECT step, kind, {}, currency, count, amount FROM {} "
                    "WHERE run_id = %s ORDER BY step, kind, category, currency"
                ).format(columns, self.table("run_report")),
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
        # Built before version 3, the tables lack the invoices' tax rounding: unknown.
        return _report(run_id, timing, rows, batches, rounding_known=self.built_version >= 3)


class _Sum:
    """Lines, amount (net) and line tax of some lines (each line's own rounded tax,
    not its invoice's per-rate tax); total = amount + tax."""

    def __init__(self) -> None:
        self.lines = 0
        self.amount = Decimal(0)
        self.tax = Decimal(0)

    def add(self, row: dict[str, Any]) -> None:
        self.lines += row["count"]
        self.amount += row["amount"]
        self.tax += row["tax"]

    def as_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "amount": str(self.amount),
            "tax": str(self.tax),
            "total": str(self.amount + self.tax),
        }


def _report(
    run_id: str,
    timing: dict[str, Any],
    rows: list[dict[str, Any]],
    batches: dict[str, Any],
    rounding_known: bool = True,
) -> dict[str, Any]:
    started, completed = timing["started_at"], timing["completed_at"]
    seconds = (completed - started).total_seconds() if started and completed else None
    lines = sorted(
        (row for row in rows if row["step"] in STEPS), key=lambda row: STEPS.index(row["step"])
    )  # stable: within a step, still by kind, category and currency
    per_step: dict[str, dict[str, _Sum]] = {}
    per_category: dict[str, dict[str, _Sum]] = {}
    per_currency: dict[str, _Sum] = {}
    for row in lines:
        currency = row["currency"]
        per_step.setdefault(row["step"], {}).setdefault(currency, _Sum()).add(row)
        per_category.setdefault(row["category"], {}).setdefault(currency, _Sum()).add(row)
        per_currency.setdefault(currency, _Sum()).add(row)
    invoices: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["step"] != INVOICES:
            continue
        entry = invoices.setdefault(row["currency"], _no_invoices())
        if row["kind"] == TAX_ROUNDING:
            entry[TAX_ROUNDING] += row["tax"]
            continue
        entry[row["kind"]] += row["count"]
        if row["kind"] == "closed":
            entry["subtotal"] += row["amount"]
            entry["tax"] += row["tax"]
    currencies = sorted(set(per_currency) | set(invoices))
    return {
        "run_id": run_id,
        "status": "completed" if completed else ("running" if started else "scheduled"),
        "settings": timing.get("settings"),  # None: version 1 did not keep them
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
                "category": row["category"],
                "currency": row["currency"],
                **_sum_of(row).as_json(),
            }
            for row in lines
        ],
        "per_step": _nested_json(per_step),
        "per_category": _nested_json(dict(sorted(per_category.items()))),
        "per_currency": {
            currency: _currency_json(
                per_currency.get(currency, _Sum()), invoices.get(currency), rounding_known
            )
            for currency in currencies
        },
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


def _sum_of(row: dict[str, Any]) -> _Sum:
    one = _Sum()
    one.add(row)
    return one


def _nested_json(sums: dict[str, dict[str, _Sum]]) -> dict[str, dict[str, Any]]:
    return {
        name: {currency: total.as_json() for currency, total in sorted(by_currency.items())}
        for name, by_currency in sums.items()
    }


def _no_invoices() -> dict[str, Any]:
    zero = Decimal(0)
    return {"opened": 0, "closed": 0, "subtotal": zero, "tax": zero, TAX_ROUNDING: zero}


def _currency_json(
    billed: _Sum, entry: dict[str, Any] | None, rounding_known: bool
) -> dict[str, Any]:
    """One currency's lines (net and line tax), the tax rounding of the invoices
    the run closed, their sum (`tax`, `total`: the invoices' tax when the run closed
    the invoices of the lines it billed), and the invoices as they closed."""
    entry = entry or _no_invoices()
    rounding: Decimal | None = entry[TAX_ROUNDING] if rounding_known else None
    tax = billed.tax + (rounding or Decimal(0))
    return {
        "lines": billed.lines,
        "amount": str(billed.amount),
        "line_tax": str(billed.tax),
        "tax_rounding": None if rounding is None else str(rounding),
        "tax": str(tax),
        "total": str(billed.amount + tax),
        **_invoiced_json(entry),
    }


def _invoiced_json(entry: dict[str, Any]) -> dict[str, Any]:
    """Invoices closed (and still open) in one currency, with the totals they closed with."""
    return {
        "invoices": entry["closed"],
        "open_invoices": entry["opened"] - entry["closed"],
        "invoiced": {
            "subtotal": str(entry["subtotal"]),
            "tax": str(entry["tax"]),
            "total": str(entry["subtotal"] + entry["tax"]),
        },
    }


class RunReportProjection(ViewProjection):
    name = RunReportView.versioned_name()
    topics = tuple(
        topic_of(e)
        for e in (
            PackageBilled, UsageBilled, ChargeBilled, ContractPenaltyApplied, InvoiceOpened,
            InvoiceLineAdded, InvoiceClosed, RunScheduled, RunStarted, RunBatchCompleted,
            RunCompleted,
        )
    )  # fmt: skip
