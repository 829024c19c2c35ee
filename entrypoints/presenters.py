"""What more than one command shows, built once: the shared tables, JSON objects
and lines of the CLI, and the look-ups they need (an invoice by its number, an
account's balance as of a day).

Command modules (`entrypoints/commands/`) import from here, never from each
other: a command group can then change its own commands without breaking
another's output, and the `--json` objects and tables that two commands share
(e.g. `invoice list` and `invoice show` with their payment status, `account
balance`, `run status` and `billrun demo`) are the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from decimal import Decimal
from itertools import islice
from typing import Any, TypeVar
from uuid import UUID

from rich.console import Group
from rich.table import Table
from rich.text import Text

from application.receivables.payments import payment_terms
from application.runs.cancel import WrittenOff, written_off
from application.runs.previews import differences
from application.shared.errors import InvoiceNotFound
from domain.billing.account import Account
from domain.invoicing.documents import DocumentType
from domain.invoicing.invoice_numbers import DOCUMENT_PREFIXES
from domain.runs.bill_run import BillRun
from domain.runs.statistics import BatchStatistics
from domain.shared.money import round_to_currency
from entrypoints import output
from entrypoints.common import date_option, runtime
from entrypoints.runtime import Runtime
from projections.receivables import (
    BUCKETS,
    CREDIT_NOTE,
    AccountBalance,
    AccountRow,
    AgingReport,
    AgingRow,
    ItemRow,
    ReceivablesView,
)

# Receivables: aging, an account's balance, an invoice's payment status -----------------


T = TypeVar("T")


BUCKET_LABELS = {
    "current": "current",
    "1-30": "1-30",
    "31-60": "31-60",
    "61-90": "61-90",
    "over_90": ">90",
}


def as_of_day(rt: Runtime, text: str | None) -> date:
    return rt.billing.clock().date() if text is None else date_option("--as-of", text)


def aging_table(report: AgingReport, per_account: bool = True) -> Table:
    """The aging buckets per account (unless `per_account` is off) and per currency."""
    table = output.compact_table(f"Receivables aging as of {report.as_of} (days past due)")
    table.add_column("account", no_wrap=True)
    table.add_column("", no_wrap=True)  # the currency
    for name in BUCKETS:
        table.add_column(BUCKET_LABELS[name], justify="right", no_wrap=True)
    for column in ("open", "credit", "balance"):
        table.add_column(column, justify="right", no_wrap=True)

    def add(label: str, row: AgingRow, style: str | None = None) -> None:
        table.add_row(
            label, row.currency, *(str(row.buckets[name]) for name in BUCKETS),
            str(row.open_total), str(row.credit), str(row.balance), style=style,
        )  # fmt: skip

    if per_account:
        for row in report.rows:
            add(row.account or "", row)
    if report.rows and per_account:
        table.add_section()
    for total in report.totals:
        add("total", total, "bold")
    if not report.rows:
        table.caption = "nothing open, no credit"
    return table


def balance_of(rt: Runtime, account_id: str, day: date) -> AccountBalance:
    """The account's balance from the read model; zeros before anything was posted."""
    account = rt.billing.get_account(account_id)  # an unknown account is refused
    found = rt.read_side.fresh_receivables().balance(account_id, day)
    if found is not None:
        return found
    zero = round_to_currency(Decimal(0), account.currency)
    row = AccountRow(account_id, account.currency, zero, None, False, None, False, None)
    aging = AgingRow(account_id, account.currency, dict.fromkeys(BUCKETS, zero), zero, zero, 0)
    return AccountBalance(row, [], aging, day)


def balance_json(balance: AccountBalance, terms_days: int, terms_source: str) -> dict[str, Any]:
    return {
        **balance.as_json(),
        "payment_terms": {"days": terms_days, "source": terms_source},
    }


def balance_view(balance: AccountBalance, terms_days: int, terms_source: str) -> Group:
    account, currency, day = balance.account, balance.account.currency, balance.as_of
    summary = Table(show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("balance", output.money(balance.balance, currency))
    summary.add_row("open", output.money(balance.aging.open_total, currency))
    summary.add_row("credit", output.money(account.credit, currency))
    summary.add_row("payment terms", f"net {terms_days} days ({terms_source})")
    summary.add_row("auto-pay", f"on ({account.autopay_hint})" if account.autopay else "off")
    summary.add_row("suspended", f"yes: {account.suspended_reason}" if account.suspended else "no")
    items = output.compact_table(f"Open invoices of {account.account} as of {day}")
    dunned = any(item.dunning_stage for item in balance.open_items)
    columns = ("invoice", "due", "amount", "paid", "open", "days\noverdue", "status")
    for column in (*columns, "dunning\nstage") if dunned else columns:
        left = column in ("invoice", "due", "status")
        items.add_column(column, justify="left" if left else "right", no_wrap=True)
    for item in balance.open_items:
        cells = [
            item.number, str(item.due_on), str(item.amount), str(item.allocated),
            str(item.open_amount), str(item.days_overdue(day)), item.status(day),
        ]  # fmt: skip
        items.add_row(*cells, *([str(item.dunning_stage or "-")] if dunned else []))
    if not balance.open_items:
        items.caption = "nothing open"
    aging = output.compact_table("Aging (days past due)")
    for name in BUCKETS:
        aging.add_column(BUCKET_LABELS[name], justify="right", no_wrap=True)
    aging.add_row(*(str(balance.aging.buckets[name]) for name in BUCKETS))
    title = Text.assemble((f"{account.account} ({currency})", "bold"), f" as of {day}")
    return Group(title, summary, items, aging)


def show_balance(account_id: str, as_of: str | None, json_out: bool) -> None:
    with runtime() as rt:
        day = as_of_day(rt, as_of)
        balance = balance_of(rt, account_id, day)
        terms = payment_terms(rt.billing, account_id)
    if json_out:
        output.print_json(balance_json(balance, terms.days, terms.source))
        return
    output.console.print(balance_view(balance, terms.days, terms.source))


def payment_statuses(
    view: ReceivablesView, rows: Iterable[T], id_of: Callable[[T], UUID], chunk: int = 1000
) -> Iterator[tuple[T, ItemRow | None]]:
    """Each of `rows` (streamed) with its posted document, looked up a chunk at a time
    (None: not posted: open, rejected when it closed, or closed before receivables)."""
    iterator = iter(rows)
    while batch := list(islice(iterator, chunk)):
        found = view.payment_status(id_of(row) for row in batch)
        for row in batch:
            yield row, found.get(id_of(row))


def payment_json(item: ItemRow | None, day: date) -> dict[str, Any]:
    """An invoice's due date and payment status as of `day` (nulls: not posted, or a
    credit note, which is not paid but pays)."""
    if item is None or item.kind == CREDIT_NOTE:
        return {"due_date": None, "payment_status": None, "paid": None, "open": None}
    return {
        "due_date": item.due_on.isoformat(),
        "payment_status": item.status(day),
        "paid": str(item.allocated),
        "open": str(item.open_amount),
    }


def payment_cell(item: ItemRow | None, day: date) -> str:
    """The due date over the payment status, for a table ("-": not posted, or a credit
    note)."""
    if item is None or item.kind == CREDIT_NOTE:
        return "-"
    return f"{item.due_on}\n{item.status(day).replace('_', ' ')}"


def payment_line(item: ItemRow | None, day: date) -> Text:
    if item is None:
        return Text.assemble(("payment: ", "bold"), "- (not posted to receivables)")
    if item.kind == CREDIT_NOTE:
        return Text.assemble(
            ("receivables: ", "bold"), "posted; it paid the invoice it corrects first"
        )
    status = item.status(day)
    text = Text.assemble(
        ("due: ", "bold"), str(item.due_on), ("  payment: ", "bold"), status.replace("_", " ")
    )
    text.append(f" as of {day} (paid {item.allocated}, open {item.open_amount} {item.currency}")
    if item.days_overdue(day):
        text.append(f", {item.days_overdue(day)} days overdue")
    text.append(")")
    return text


def document_of(rt: Runtime, invoice_id: UUID) -> ItemRow | None:
    return rt.read_side.fresh_receivables().payment_status([invoice_id]).get(invoice_id)


# Finding an invoice by id or number ----------------------------------------------------


def resolve_invoice_id(rt: Runtime, text: str) -> UUID:
    """An invoice's id from its id, its number (42, INV-00000042), or a credit note's
    number (CN-00000003: credit notes are numbered apart), or the number an issuing
    entity printed (BE-2026-000001)."""
    try:
        return UUID(text)
    except ValueError:
        pass
    printed = rt.read_side.fresh_invoices().id_of_printed_number(text)
    if printed is not None:  # another issuing entity's number (BE-2026-000001)
        return printed
    digits, document_type = text.upper(), DocumentType.INVOICE
    for prefix, kind in DOCUMENT_PREFIXES.items():
        if digits.startswith(prefix):
            digits, document_type = digits.removeprefix(prefix), kind
    if not digits.isdigit():
        raise InvoiceNotFound(text)
    found = rt.read_side.fresh_invoices().id_of_number(int(digits), document_type)
    if found is None:
        raise InvoiceNotFound(text)
    return found


# Usage and charges ---------------------------------------------------------------------


def account_with_written_off(account_id: str) -> tuple[Account, WrittenOff]:
    """The account and what runs cancelled with --discard billed on it: what
    `charge list` and `usage list` show, read in one runtime."""
    with runtime() as rt:
        stored = rt.billing.get_account(account_id)
        return stored, written_off(rt.billing, stored)


def billed_text(row: dict[str, Any]) -> str:
    """The "billed" column: billed by a run cancelled with --discard is written off
    (nothing bills it again, and no invoice stands for it)."""
    if row["written_off"]:
        return f"written off (run {row['written_off_by_run']} discarded)"
    return "yes" if row["billed"] else "no"


# Bill runs: figures and totals ---------------------------------------------------------


def run_steps(run: BillRun) -> list[dict[str, object]]:
    """Which steps `run` performed, in the seed's order, with their counts;
    billing steps share one timing (one pass per account), invoicing another."""
    settings, stats = run.settings, run.statistics
    counts = stats.line_counts
    started = run.started_at.isoformat(timespec="seconds") if run.started_at else None
    billing = {"seconds": Decimal(run.timings.billing_ms) / 1000, "started": started}
    collection = run.collection
    collecting = run.collection_started_at
    return [
        {"step": "run_dunning", "ran": settings.run_dunning,
         "stages_applied": stats.dunning_applied,
         "accounts_suspended": stats.accounts_suspended,
         "seconds": Decimal(run.timings.dunning_ms) / 1000, "started": started},
        {"step": "bill_packages", "ran": settings.bill_packages,
         "lines": counts.get("recurring", 0), **billing},
        {"step": "bill_usage", "ran": settings.bill_usage,
         "lines": counts.get("usage", 0), **billing},
        {"step": "run_contracts", "ran": settings.run_contracts,
         "lines": counts.get("penalty", 0), **billing},
        {"step": "bill_charges", "ran": settings.bill_charges,
         "lines": counts.get("charge", 0), **billing},
        {"step": "run_invoices", "ran": settings.run_invoices,
         "invoices_closed": stats.invoices, "invoices_left_open": stats.invoices_left_open,
         "seconds": Decimal(run.timings.invoicing_ms) / 1000, "started": started},
        {"step": "render_invoices", "ran": settings.render_invoices, "by": "the worker"},
        {"step": "deliver_invoices", "ran": settings.deliver_invoices, "by": "the worker"},
        {"step": "collect_payments", "ran": settings.collect_payments,
         "collection_type": settings.collection_type.value,
         "attempts": collection.attempts, "approved": collection.approved,
         "declined": collection.declined, "errors": collection.errors,
         "pending": collection.pending, "collected": collection.collected,
         "seconds": Decimal(run.timings.collection_ms) / 1000,
         "started": collecting.isoformat(timespec="seconds") if collecting else None},
    ]  # fmt: skip


def statistics_table(run: BillRun) -> Table:
    """The run's figures as docs/architecture.md ("Run statistics") defines them:
    seen = billed + nothing due + parked; totals of the closed invoices as net,
    tax and gross per currency, and in the base currency when one is set."""
    stats = run.statistics
    table = Table(
        title=f"Bill run {run.run_id}: {run.status.value} ({run.workflow_state.value})",
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("period", str(run.period))
    table.add_row("accounts in scope", str(run.accounts_in_scope))
    table.add_row("accounts seen", str(stats.accounts_seen))
    table.add_row("accounts billed", str(stats.accounts_billed))
    table.add_row("accounts with nothing due", str(stats.accounts_skipped))
    table.add_row("accounts parked", str(stats.accounts_parked))
    table.add_row("invoices closed", str(stats.invoices))
    table.add_row("lines", str(stats.lines))
    if stats.stranded:
        table.add_row("stranded bill dates left owed", str(stats.stranded))
    for label, currency, amount in totals_rows(run_totals(stats), "invoiced"):
        table.add_row(label, output.money(amount, currency))
    for label, currency, amount in totals_rows(base_totals(stats), "base currency"):
        table.add_row(label, output.money(amount, currency))
    return table


def run_totals(stats: BatchStatistics) -> dict[str, dict[str, Decimal]]:
    """The closed invoices' net, tax and gross per currency (labelled: a bare
    "total" next to the net amount was read as the invoices' total)."""
    return {
        currency: {
            "net": net,
            "tax": stats.tax_totals.get(currency, Decimal(0)),
            "gross": stats.gross_totals.get(
                currency, net + stats.tax_totals.get(currency, Decimal(0))
            ),
        }
        for currency, net in stats.totals.items()
    }


def base_totals(stats: BatchStatistics) -> dict[str, dict[str, Decimal]]:
    return {currency: dict(amounts) for currency, amounts in stats.base_totals.items()}


def totals_rows(
    totals: Mapping[str, Mapping[str, Decimal | None]], prefix: str
) -> list[tuple[str, str, Decimal]]:
    """(label, currency, amount) rows: `invoiced net EUR`, `invoiced tax EUR`, ..."""
    return [
        (f"{prefix} {kind} {currency}", currency, amount)
        for currency, amounts in totals.items()
        for kind, amount in amounts.items()
        if amount is not None
    ]


# Bill runs: against their preview ------------------------------------------------------


def preview_comparison(run: BillRun) -> str | None:
    """How the completed run compares with its preview, as a predicate (`run R
    equals its preview ...`); None: no preview, or the run is not done."""
    if run.preview is None or not run.is_completed:
        return None
    found = differences(run.preview, run.statistics)
    if not found:
        return "equals its preview (same digest)"
    return "differs from its preview: " + "; ".join(found)
