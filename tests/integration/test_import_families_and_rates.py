"""The import file's exchange rates, base currency, families, bill days and close
types: imported all or nothing, again a no-op, and billed as stated."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from application.billing.import_document import parse_import
from application.billing.importing import import_accounts
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.errors import InvalidInput
from domain.invoicing.group_terms import CloseType
from domain.runs.settings import Selection
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from tests.conftest import account, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "base_currency": "EUR",
        "exchange_rates": [
            {"base": "EUR", "quote": "USD", "rate": "1.25", "date": "2025-12-01"},
            {"base": "EUR", "quote": "USD", "rate": "1.20", "date": "2026-02-01"},
        ],
        "bill_groups": [{"id": "family", "close_type": "post_user_billing"}],
        "accounts": [
            {**account("HQ", package("office", "100.00"), bill_group="family"), "bill_day": 1},
            {
                **account("BRANCH", package("desk", "50.00"), currency="USD"),
                "invoicer": "HQ",
            },
        ],
    }
    doc.update(changes)
    return doc


def load(billing: Billing, doc: dict[str, Any]) -> int:
    raw = json.dumps(doc).encode()
    return import_accounts(billing, parse_import(raw, "f.json"), "f.json").events


def test_rates_families_and_bill_days_import_and_bill(billing: Billing) -> None:
    load(billing, document())
    book = billing.get_rate_book()
    assert book.base_currency == "EUR"
    assert book.snapshot(date(2026, 1, 31)).rates == {"EUR/USD": Decimal("1.25")}
    assert book.snapshot(date(2026, 2, 28)).rates == {"EUR/USD": Decimal("1.20")}
    hq = billing.get_account("HQ")
    assert (hq.members, hq.bill_day) == (["BRANCH"], 1)
    assert billing.get_account("BRANCH").invoicer == "HQ"
    assert billing.get_bill_group("family").close_type is CloseType.POST_USER_BILLING

    assert load(billing, document()) == 0  # the same file again changes nothing

    schedule_run(billing, "jan", JANUARY, None, Selection())
    BillRunExecutor(billing, batch_size=10).execute("jan")
    invoice = billing.get_invoice(invoice_uuid("jan", "HQ"))
    assert [(line.account_id, line.amount, line.original_amount) for line in invoice.lines] == [
        ("HQ", Decimal("100.00"), None),
        ("BRANCH", Decimal("40.00"), Decimal("50.00")),
    ]


def test_a_member_leaves_its_family_when_the_file_says_so(billing: Billing) -> None:
    load(billing, document())
    doc = document()
    del doc["accounts"][1]["invoicer"]
    load(billing, doc)
    assert billing.get_account("HQ").members == []
    assert billing.get_account("BRANCH").invoicer is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {
                "exchange_rates": [
                    {"base": "EUR", "quote": "EUR", "rate": "1", "date": "2026-01-01"}
                ]
            },
            "exchange_rates[0].quote: the same currency as base: EUR",
        ),
        (
            {
                "exchange_rates": [
                    {"base": "EUR", "quote": "USD", "rate": "0", "date": "2026-01-01"}
                ]
            },
            'exchange_rates[0].rate: "0" must be positive',
        ),
        ({"base_currency": "EURO"}, 'base_currency: not an ISO 4217 currency code: "EURO"'),
        (
            {"accounts": [{**account("A"), "invoicer": "NOBODY"}]},
            "accounts[0].invoicer: no account 'NOBODY'",
        ),
        (
            {
                "accounts": [
                    {**account("A"), "invoicer": "B"},
                    {**account("B"), "invoicer": "C"},
                    account("C"),
                ]
            },
            "accounts[0].invoicer: B is itself billed onto C's invoices",
        ),
        ({"accounts": [{**account("A"), "bill_day": 32}]}, "accounts[0].bill_day"),
        ({"bill_groups": [{"id": "g", "close_type": "weekly"}]}, "bill_groups[0].close_type"),
    ],
)
def test_a_bad_file_is_refused_whole(
    billing: Billing, changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        load(billing, document(**changes))
    assert problem in str(refused.value)
    assert billing.get_rate_book().version == 0
    assert billing.queries.head() == 0  # nothing written


def test_contracts_import_once_and_a_termination_bills_the_fee(billing: Billing) -> None:
    contract = {
        "id": "C1",
        "description": "Office contract",
        "package_id": "office",
        "start_date": "2026-01-01",
        "term_months": 12,
        "early_termination_fee": "150.00",
    }
    doc = {"accounts": [{**account("HQ", package("office", "100.00")), "contracts": [contract]}]}
    load(billing, doc)
    assert load(billing, doc) == 0
    terminated = {"accounts": [{**doc["accounts"][0], "contracts": [
        {**contract, "terminated_on": "2026-01-20"}]}]}  # fmt: skip
    load(billing, terminated)
    schedule_run(billing, "jan", JANUARY, None, Selection())
    BillRunExecutor(billing, batch_size=10).execute("jan")
    invoice = billing.get_invoice(invoice_uuid("jan", "HQ"))
    assert [(line.source, line.amount) for line in invoice.lines] == [
        ("package:office", Decimal("100.00")),
        ("contract:C1", Decimal("150.00")),
    ]
    changed = {"accounts": [{**doc["accounts"][0], "contracts": [
        {**contract, "term_months": 24}]}]}  # fmt: skip
    with pytest.raises(InvalidInput, match=r"accounts\[0\]\.contracts\[0\]"):
        load(billing, changed)
