"""Every tax total a run reports is its invoices' tax, to the minor unit.

An invoice taxes each rate's taxable amount and rounds once (BR-CO-17) while each
line keeps its own rounded tax, so many same-rate lines rounding one way make the
two differ: three 5-yen lines at 10 % have line taxes 1 + 1 + 1 = 3 where the
invoice's 15 x 10 % is 2; ten 0.05 EUR lines at 21 % have 10 x 0.01 = 0.10 where
0.50 x 21 % is 0.11. The run's statistics (`run status`), its totals and the run
report must all give the invoices' figure; the report's step and category rows
show line tax, and its rounding row makes them add up to that figure.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from rich.console import Console

from application.billing import importing
from application.billing.import_document import parse_import
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.invoicing.invoice import Invoice
from domain.runs.settings import Selection
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from entrypoints.commands.runs import run_json
from entrypoints.run_tables import report_tables
from projections.catalog import ReadSide
from projections.run_report import RunReportProjection, RunReportView
from projections.view import catch_up, open_view
from tests.conftest import account, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))


def charges(prefix: str, count: int, amount: str, tax_rate: str) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{n:02d}", "description": "Print", "amount": amount,
         "date": "2026-01-10", "tax_rate": tax_rate}
        for n in range(count)
    ]  # fmt: skip


ACCOUNTS = [
    # 3 x 5 yen at 10 %: lines 1 + 1 + 1 = 3, the invoice 15 x 10 % = 1.5 -> 2.
    {**account("YEN", package(amount="0"), currency="JPY"), "charges": charges("y", 3, "5", "10")},
    # 10 x 0.05 at 21 %: lines 10 x 0.01 = 0.10, the invoice 0.50 x 21 % = 0.105 -> 0.11.
    {**account("EUR-A", package(amount="0.00")), "charges": charges("a", 10, "0.05", "21")},
    # Two rates on one invoice: the 21 % lines as above, and 3 x 0.25 at 6 %:
    # lines 3 x 0.02 = 0.06, the invoice 0.75 x 6 % = 0.045 -> 0.05 (rounding the
    # other way), so the invoice's rounding is +0.01 - 0.01 = 0.
    {**account("EUR-B", package(amount="0.00")),
     "charges": charges("b", 10, "0.05", "21") + charges("c", 3, "0.25", "6")},
]  # fmt: skip


def money(value: str | None) -> Decimal:
    assert value is not None
    return Decimal(value)


def summed(values: Iterable[Decimal]) -> Decimal:
    return sum(values, Decimal(0))


def billed_run(billing: Billing) -> list[Invoice]:
    document = {"accounts": ACCOUNTS}
    importing.import_accounts(billing, parse_import(json.dumps(document).encode(), "f.json"), "f")
    schedule_run(billing, "jan", JANUARY, None, Selection())
    BillRunExecutor(billing, 1).execute("jan")  # a batch per account
    ids = [invoice_uuid("jan", a["id"]) for a in ACCOUNTS]
    return list(billing.load_many(Invoice, ids).values())


def invoice_tax(invoices: list[Invoice]) -> dict[str, Decimal]:
    return {
        currency: summed(i.tax for i in invoices if i.currency == currency)
        for currency in sorted({i.currency for i in invoices})
    }


def test_the_scenario_rounds_line_tax_away_from_the_invoices_tax(billing: Billing) -> None:
    invoices = billed_run(billing)
    by_account = {i.account_id: i for i in invoices}
    line_tax = {a: summed(line.tax for line in i.lines) for a, i in by_account.items()}
    tax = {a: i.tax for a, i in by_account.items()}
    assert line_tax == {
        "YEN": Decimal(3), "EUR-A": Decimal("0.10"), "EUR-B": Decimal("0.16"),
    }  # fmt: skip
    assert tax == {
        "YEN": Decimal(2), "EUR-A": Decimal("0.11"), "EUR-B": Decimal("0.16"),
    }  # fmt: skip


def test_the_runs_statistics_and_totals_are_its_invoices_tax(billing: Billing) -> None:
    invoices = billed_run(billing)
    expected = invoice_tax(invoices)
    assert expected == {"EUR": Decimal("0.27"), "JPY": Decimal(2)}
    run = billing.get_run("jan")
    assert run.statistics.tax_totals == expected
    nets = {c: summed(i.subtotal for i in invoices if i.currency == c) for c in expected}
    assert run.statistics.gross_totals == {c: nets[c] + expected[c] for c in expected}
    totals = run_json(run)["totals"]  # what `run status --json` prints
    assert {c: money(t["tax"]) for c, t in totals.items()} == expected


def test_the_run_reports_tax_is_its_invoices_tax_and_its_rows_add_up_to_it(
    billing: Billing, es_env: dict[str, str]
) -> None:
    invoices = billed_run(billing)
    expected = invoice_tax(invoices)
    read_side = ReadSide(billing, es_env)
    try:
        report = read_side.fresh_run_report().report("jan")
    finally:
        read_side.close()
    assert report is not None
    assert_report_tax_is(report, expected, invoices)
    assert {c: money(t["tax_rounding"]) for c, t in report["per_currency"].items()} == {
        "EUR": Decimal("0.01"),  # EUR-A +0.01, EUR-B +0.01 - 0.01
        "JPY": Decimal(-1),
    }
    # The operator's table shows the rounding rows, within 80 columns.
    console = Console(file=io.StringIO(), width=80)
    console.print(report_tables(report))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert text.count("tax rounding per rate") == 2
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_rounding_is_the_same_when_the_report_reads_one_event_at_a_time(
    billing: Billing, es_env: dict[str, str]
) -> None:
    """As the live projection runner writes it: an invoice's lines and its close in
    separate transactions, so its line tax waits in the open-invoice table."""
    invoices = billed_run(billing)
    view = open_view(RunReportView, es_env, "v3_9")
    try:
        catch_up(billing, view, RunReportProjection.topics, page_size=1)
        report = view.report("jan")
        assert report is not None
        assert_report_tax_is(report, invoice_tax(invoices), invoices)
        with view.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT count(*) AS n FROM {view.datastore.schema}.open_invoice_tax_v3_9")
            row = curs.fetchone()
        assert row is not None and row["n"] == 0, "every invoice closed: none kept open"
    finally:
        view.drop()
        view.datastore.close()


def assert_report_tax_is(
    report: dict[str, Any], expected: dict[str, Decimal], invoices: list[Invoice]
) -> None:
    per_currency = report["per_currency"]
    assert set(per_currency) == set(expected)
    for currency, totals in per_currency.items():
        # The currency's tax is its invoices' tax, as they closed, to the minor unit.
        assert money(totals["tax"]) == expected[currency], currency
        assert money(totals["invoiced"]["tax"]) == expected[currency], currency
        net = summed(i.subtotal for i in invoices if i.currency == currency)
        assert money(totals["total"]) == net + expected[currency]
        # Line tax (per step, per category) plus the rounding is that tax.
        rounding = money(totals["tax_rounding"])
        line_tax = money(totals["line_tax"])
        assert line_tax + rounding == expected[currency]
        for grouping in ("per_step", "per_category"):
            rows = [by[currency] for by in report[grouping].values() if currency in by]
            assert summed(money(r["tax"]) for r in rows) == line_tax, (grouping, currency)
        lines = [line for i in invoices if i.currency == currency for line in i.lines]
        assert line_tax == summed(line.tax for line in lines)
