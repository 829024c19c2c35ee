"""How `billrun run` commands show a run: its status, steps, report, drafts and
lease as tables, and the run as JSON (entrypoints/commands/runs.py prints them)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Group
from rich.table import Table

from entrypoints import output
from entrypoints.common import runtime
from entrypoints.representations_runs import settings_rows

_SHOWN_APART = frozenset({"step_log", "parked", "preview", "failure"})
"""`run status` fields printed below the table, each in its own form."""


_LABELS = {"status": "execution", "workflow_state": "workflow"}
"""`status` is the execution (billing done: `completed`), `workflow_state` the review
that follows it: side by side as `status` and `workflow state` they read as a
contradiction (`completed` beside `drafts_ready`)."""
_NEXT = {
    "drafts_ready": "drafts_ready: review the invoices, then `billrun run process {run}`",
    "validated": "validated: every invoice reviewed; `billrun run process {run}` completes it",
}


def drafts_table(run_id: str) -> Table:
    """The invoices the run closed, ready for review (the seed's "display draft
    invoices after transfer")."""
    with runtime() as rt:
        rows = [
            row for row in rt.read_side.fresh_invoices().search(run_id=run_id)
            if row.status == "closed"
        ]  # fmt: skip
    # Narrow margins (as `invoice list`), so an 80-column terminal keeps every column.
    table = output.compact_table(f"Draft invoices of run {run_id}: {len(rows)}")
    # Closed invoices the review rules quarantined or rejected are listed too: the
    # review column tells them from the drafts awaiting approval.
    for column in ("number", "account", "review"):
        table.add_column(column, no_wrap=True)
    for column in ("lines", "subtotal", "tax", "total"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            row.display_number, row.account, row.review_status or "-", str(len(row.lines)),
            output.money(row.subtotal, row.currency), output.money(row.tax, row.currency),
            output.money(row.total, row.currency),
        )  # fmt: skip
    return table


def steps_table(run_id: str, steps: list[dict[str, Any]]) -> Table:
    """The run's steps in the seed's order: ran or not, counts, time."""
    table = Table(title=f"Steps of run {run_id}")
    for column in ("step", "ran", "started", "counts", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for step in steps:
        counts = ", ".join(
            f"{k.replace('_', ' ')} {cell(v)}" for k, v in step.items()
            if k not in ("step", "ran", "seconds", "by", "started")
        ) or (f"by {step['by']}" if "by" in step else "")  # fmt: skip
        seconds = step.get("seconds")
        started = step.get("started") if step["ran"] else None
        table.add_row(step["step"], "yes" if step["ran"] else "no", started or "", counts,
                      "" if seconds is None else f"{seconds:.3f}")  # fmt: skip
    table.caption = "billing steps run in one pass per account and share one time"
    return table


def lease_cell(holder: str | None, expires_at: datetime | None, now: datetime) -> str:
    """The manager holding the run, on lines of their own under its status."""
    if holder is None or expires_at is None:
        return ""
    state = "expired" if expires_at <= now else "until"
    return f"\nleased by {holder}\n{state} {expires_at.isoformat(timespec='seconds')}"


def parked_table(run_id: str, parked: dict[str, str]) -> Table:
    table = Table(title=f"Accounts parked by run {run_id} (billrun run retry {run_id} --account A)")
    table.add_column("account")
    table.add_column("why")
    for account_id, reason in sorted(parked.items()):
        table.add_row(account_id, reason)
    return table


def report_tables(report: dict[str, Any]) -> Group:
    """What was billed per step, category and currency (lines, amount, line tax,
    total), the tax rounding per rate, the invoices closed per currency, then the
    run's settings, accounts and timings."""
    # Which tax each row shows: a line's own is rounded per line, an invoice's per
    # rate (BR-CO-17); the rounding row reconciles them so the rows add up.
    billed = Table(
        title=f"Run report {report['run_id']} ({report['status']})",
        caption="Step and category tax is line tax, each line rounded. The total adds "
        "each invoice's rounding per rate (BR-CO-17): its invoices' tax.",
    )
    billed.add_column("", overflow="fold")
    billed.add_column("currency", no_wrap=True)
    # Labelled net and gross: an unlabelled "amount" beside a currency was read as
    # what the invoices total.
    for column in ("lines", "net", "tax", "gross"):
        billed.add_column(column, justify="right", no_wrap=True)

    def add(label: str, currency: str, total: dict[str, Any]) -> None:
        billed.add_row(
            label, currency, str(total["lines"]), total["amount"], total["tax"], total["total"]
        )

    for step, by_currency in report["per_step"].items():
        for currency, total in by_currency.items():
            add(step, currency, total)
    billed.add_section()
    for category, by_currency in report["per_category"].items():
        for currency, total in by_currency.items():
            add(f"category {category}", currency, total)
    billed.add_section()
    for currency, total in report["per_currency"].items():
        rounding = total.get("tax_rounding")
        if rounding is None or Decimal(rounding):
            billed.add_row("tax rounding per rate", currency, "", "", rounding or "unknown", "")
    for currency, total in report["per_currency"].items():
        add("total", currency, total)
    for currency, total in report["per_currency"].items():
        invoiced = total["invoiced"]
        billed.add_row(
            f"invoiced: {plural(total['invoices'], 'invoice')}", currency, "",
            invoiced["subtotal"], invoiced["tax"], invoiced["total"],
        )  # fmt: skip

    for currency, amounts in report.get("base_totals", {}).items():
        billed.add_row(
            f"invoiced in base currency {currency}", currency, "",
            amounts["net"], amounts["tax"], amounts["gross"],
        )  # fmt: skip

    return Group(billed, about_table(report))


def about_table(report: dict[str, Any]) -> Table:
    """The run report's settings, accounts and timings."""
    about = Table(show_header=False)
    about.add_column(style="bold")
    about.add_column()
    about.add_column(justify="right")
    for key, value in settings_rows(report["settings"]).items():
        about.add_row("settings", key, value)
    about.add_section()
    for key, value in report["accounts"].items():
        about.add_row("accounts", key.replace("_", " "), str(value))
    about.add_section()
    for key, value in report["timings"].items():
        about.add_row("timings", key.replace("_", " "), "-" if value is None else str(value))
    return about


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def status_rows(shown: dict[str, Any]) -> dict[str, Any]:
    """`run status` fields for the table: the settings spelt out in place, the
    execution and the workflow labelled apart, the next workflow step named."""
    rows: dict[str, Any] = {}
    for key, value in shown.items():
        if key in _SHOWN_APART:
            continue
        if key == "settings":
            rows.update(settings_rows(value))
        elif key == "workflow_state" and value in _NEXT:
            rows[_LABELS[key]] = _NEXT[value].format(run=shown.get("run_id"))
        elif key == "status" and value == "completed":
            rows[_LABELS[key]] = "completed (billing done)"
        elif key in ("totals", "base_totals") and isinstance(value, dict):
            # Each currency's gross over its net and tax, not one run-on line.
            amounts = {
                currency: {kind: None if v is None else Decimal(str(v)) for kind, v in row.items()}
                for currency, row in value.items()
            }
            rows[_LABELS.get(key, key)] = "\n".join(totals_cells(amounts)) or "-"
        else:
            rows[_LABELS.get(key, key)] = value
    return rows


def key_value_table(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in values.items():
        table.add_row(key.replace("_", " "), cell(value))
    return table


def cell(value: Any) -> str:
    """A value as a table cell: mappings as `key: value` pairs, nested ones too."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def totals_cells(totals: Mapping[str, Mapping[str, Decimal | None]]) -> list[str]:
    """`720.00 EUR gross` over `(net 600.00, tax 120.00)`, one pair of lines per
    currency: one line would not fit an 80-column table beside the run's id."""
    cells = []
    for currency, amounts in totals.items():
        net, tax, gross = amounts.get("net"), amounts.get("tax"), amounts.get("gross")
        if gross is None or net is None or tax is None:  # a read model built before tax
            cells.append(f"net {output.money(net or Decimal(0), currency)}")
        else:
            cells.append(
                f"{output.money(gross, currency)} gross\n"
                f"(net {output.grouped(net, currency)}, tax {output.grouped(tax, currency)})"
            )
    return cells
