"""Before a run: its checks, which stop it on errors, and its preview, computed by
the billing code itself, which the execution that follows must equal."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from application.billing import importing
from application.billing.import_document import parse_import
from application.billing.transactions import ChargeInput, add_charges
from application.runs.check import check_run
from application.runs.executor import BillRunExecutor, RunCheckFailed
from application.runs.previews import differences, preview_run
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.terms import ChargeTerms
from domain.runs.settings import RunSettings, RunStatus, Selection
from domain.shared.errors import RunNotRunnable
from domain.shared.periods import Period
from tests.conftest import account, import_accounts, package
from tests.integration.helpers import EventLog, import_with_usage_and_charges, varied_accounts

Q1 = Period(date(2026, 1, 1), date(2026, 3, 31))
JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))


def load(billing: Billing, document: dict[str, Any]) -> None:
    raw = json.dumps(document).encode()
    importing.import_accounts(billing, parse_import(raw, "f.json"), "f.json")


def test_a_run_with_errors_does_not_start_and_says_why(billing: Billing) -> None:
    load(
        billing,
        {
            "bill_groups": [{"id": "mailed", "delivery": "email"}],
            "accounts": [
                account("OK", package("office", "100.00"), bill_group="mailed"),
                {**account("NOMAIL", package("desk", "0.00"), bill_group="mailed"),
                 "invoice_email": None},
                {**account("PAPER", package("promo", "-5.00")), "invoice_email": None},
            ],
        },
    )  # fmt: skip
    schedule_run(billing, "jan", JANUARY, None, Selection())
    schedule_run(billing, "jan-again", JANUARY, None, Selection(groups=("mailed",)))

    report = check_run(billing, "jan")
    assert [(f.severity, f.check, f.count, f.accounts) for f in report.findings] == [
        ("error", "no_invoice_email", 1, ["NOMAIL"]),
        ("warning", "negative_price", 1, ["PAPER/promo"]),
        ("warning", "no_buyer_address", 3, ["OK", "NOMAIL", "PAPER"]),
        ("warning", "no_invoice_email", 1, ["PAPER"]),
        ("warning", "overlapping_run", 1, []),
        ("warning", "zero_price", 1, ["NOMAIL/desk"]),
    ]
    with pytest.raises(RunCheckFailed, match="NOMAIL"):
        BillRunExecutor(billing, batch_size=10).execute("jan")
    assert billing.get_run("jan").status is RunStatus.SCHEDULED

    fixed = {**account("NOMAIL", package("desk", "0.00"), bill_group="mailed")}
    load(billing, {"accounts": [fixed]})
    assert check_run(billing, "jan").errors == []
    BillRunExecutor(billing, batch_size=10).execute("jan")
    assert billing.get_run("jan").is_completed


def test_a_run_that_does_not_deliver_only_warns_of_missing_emails(billing: Billing) -> None:
    load(
        billing,
        {
            "bill_groups": [{"id": "mailed", "delivery": "email"}],
            "accounts": [{**account("NOMAIL", package(), bill_group="mailed"),
                          "invoice_email": None}],
        },
    )  # fmt: skip
    settings = RunSettings(render_invoices=False, deliver_invoices=False)
    schedule_run(billing, "jan", JANUARY, None, Selection(), settings)
    assert [f.severity for f in check_run(billing, "jan").findings] == ["warning"]


def test_the_execution_equals_its_preview(billing: Billing, database_url: str) -> None:
    import_with_usage_and_charges(billing, *varied_accounts(30))
    schedule_run(billing, "q1", Q1, None, Selection())
    with EventLog(database_url) as log:
        before = log.total()
        report = preview_run(billing, "q1", batch_size=7)
        assert log.total() == before + 1  # the preview on the run, nothing else
    preview = report.summary
    assert preview.invoices == 30 and preview.lines > 60
    # The detail adds up to the summary: per invoice and per account, net per currency.
    assert len(report.invoices) == 30 and sum(i.lines for i in report.invoices) == preview.lines
    for rows in (report.invoices, report.accounts):
        net: dict[str, Decimal] = {}
        for row in rows:
            net[row.currency] = net.get(row.currency, Decimal(0)) + row.net
            assert row.gross == row.net + row.tax
        assert net == {c: sum(kinds.values(), Decimal(0)) for c, kinds in preview.totals.items()}
    assert set(preview.totals) == {"EUR", "USD", "JPY"}
    assert set(preview.totals["EUR"]) == {"recurring", "usage", "charge", "penalty"}

    BillRunExecutor(billing, batch_size=4).execute("q1")  # other batches than the preview's
    run = billing.get_run("q1")
    assert run.statistics.content_digest == preview.digest
    assert run.statistics.lines == preview.lines
    assert run.statistics.billed == preview.totals
    assert differences(preview, run.statistics) == []


def test_when_data_changes_after_the_preview_the_report_says_what_differs(
    billing: Billing,
) -> None:
    import_accounts(billing, account("A", package("office", "100.00")))
    schedule_run(billing, "jan", JANUARY, None, Selection())
    preview = preview_run(billing, "jan", batch_size=10).summary
    add_charges(
        billing,
        [
            ChargeInput(
                "c", "A", ChargeTerms(charge_id="late", description="Late", amount=Decimal("7.50"),
                                      charge_date=date(2026, 1, 20)),
            )
        ],
        "test",
    )  # fmt: skip
    BillRunExecutor(billing, batch_size=10).execute("jan")
    assert differences(preview, billing.get_run("jan").statistics) == [
        "lines: previewed 1, billed 2",
        "EUR charge: previewed 0, billed 7.50",
    ]


def test_only_a_scheduled_run_is_previewed(billing: Billing) -> None:
    import_accounts(billing, account("A", package()))
    schedule_run(billing, "jan", JANUARY, None, Selection())
    BillRunExecutor(billing, batch_size=10).execute("jan")
    with pytest.raises(RunNotRunnable, match="only a scheduled run"):
        preview_run(billing, "jan", batch_size=10)


def test_a_description_is_the_one_thing_that_changes(billing: Billing) -> None:
    import_accounts(billing, account("A", package()))
    schedule_run(billing, "jan", JANUARY, None, Selection())
    run = billing.get_run("jan")
    run.describe("January, first try", billing.clock())
    billing.save(run)
    assert billing.get_run("jan").description == "January, first try"


def test_run_check_warns_of_buyers_whose_e_invoices_fall_short(billing: Billing) -> None:
    from application.shared.ports import Seller

    address = {"address": {"city": "Brussels", "country": "BE"}}
    peppol = {"electronic_address": {"scheme": "0208", "id": "0477472701"}}
    load(
        billing,
        {
            "accounts": [
                {**account("READY", package()), **address, **peppol},
                {**account("NOWHERE", package()), **peppol},
                {**account("OFFLINE", package()), **address},
                {**account("KUWAIT", package("office", "12.345"), currency="KWD"), **address,
                 **peppol},
            ]
        },
    )  # fmt: skip
    billing.seller = Seller(
        name="Real Ltd", iban="BE68539007547034", email="b@real.test", peppol=True
    )
    schedule_run(billing, "jan", JANUARY, None, Selection())
    found = {(f.check, tuple(f.accounts)) for f in check_run(billing, "jan").findings}
    assert found == {
        ("no_buyer_address", ("NOWHERE",)),
        ("not_on_peppol", ("OFFLINE",)),
        ("no_en16931_currency", ("KUWAIT",)),
    }


def test_run_check_judges_each_buyer_against_its_own_issuing_entity(billing: Billing) -> None:
    """The default seller is not on Peppol; a bill group's entity is: only that
    group's buyers without an electronic address are warned, naming the entity."""
    from application.shared.ports import Seller
    from tests.integration.test_issuing_entities import BELGIUM

    address = {"address": {"city": "Brussels", "country": "BE"}}
    load(
        billing,
        {
            "entities": [BELGIUM],
            "bill_groups": [{"id": "be-group", "issuing_entity": "be"}],
            "accounts": [
                {**account("BE-OFFLINE", package(), bill_group="be-group"), **address},
                {**account("HOME-OFFLINE", package()), **address},
            ],
        },
    )
    billing.seller = Seller(
        name="Real Ltd", iban="BE68539007547034", email="b@real.test", peppol=False
    )
    schedule_run(billing, "jan", JANUARY, None, Selection())
    findings = [f for f in check_run(billing, "jan").findings if f.check == "not_on_peppol"]
    assert [tuple(f.accounts) for f in findings] == [("BE-OFFLINE",)]
    assert "Billrun Belgium SRL" in findings[0].message


def test_a_previewed_invoices_tax_is_the_tax_it_closes_with(billing: Billing) -> None:
    """41 lines of 0.10 at 25 %: each line's tax rounds to 0.03 (1.23 summed), the
    invoice taxes 4.10 once (1.03); the preview shows the invoice's 1.03."""
    charges = [
        {"id": f"c{n:02d}", "description": "Print", "amount": "0.10", "date": "2026-01-10",
         "tax_rate": "25"}
        for n in range(41)
    ]  # fmt: skip
    load(billing, {"accounts": [{**account("ROUND", package(amount="0.00")), "charges": charges}]})
    schedule_run(billing, "q1", Q1, None, Selection())
    (previewed,) = preview_run(billing, "q1", batch_size=5).invoices
    assert (previewed.net, previewed.tax) == (Decimal("4.10"), Decimal("1.03"))
    BillRunExecutor(billing, 5).execute("q1")
    run = billing.get_run("q1")
    assert run.statistics.tax_totals == {"EUR": Decimal("1.03")}
