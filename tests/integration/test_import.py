"""Importing accounts: idempotent, all or nothing, and refusing what history forbids.

Also what the file brings for billing: tax rates, package categories and anchor
dates, one-off charges and usage, billed by a run as the file said.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

import application.billing.importing as billing_module
from application.billing.import_document import parse_import
from application.billing.importing import ImportSummary, import_accounts
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.errors import InvalidInput
from domain.billing.events import (
    AccountDetailsChanged,
    AccountOpened,
    ChargeAdded,
    PackageRevised,
    PackageSubscribed,
    UsageRecorded,
)
from domain.billing.lines import LineKind
from domain.runs.settings import Selection
from domain.shared.ids import account_uuid, invoice_uuid
from domain.shared.periods import Period
from infrastructure.topics import topic_of
from tests.conftest import account, package


def run_import(app: Billing, *accounts: dict[str, Any]) -> ImportSummary:
    """Import a document the way `billrun import` does: parse, then import."""
    raw = json.dumps({"accounts": list(accounts)}).encode()
    return import_accounts(app, parse_import(raw, "accounts.json"), "accounts.json")


def event_count(app: Billing) -> int:
    with app.recorder.datastore.transaction(commit=False) as curs:
        curs.execute(f"SELECT count(*) AS n FROM {app.queries.table_name}")
        row = curs.fetchone()
    assert row is not None
    return int(row["n"])


def history(app: Billing, account_id: str) -> list[Any]:
    return list(app.iter_history(account_uuid(account_id)))


def problems_of(error: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [str(problem) for problem in error.value.problems]


ACME = account("ACME-001", package("office", "1200.00"), package("mail", "45.00", "quarterly"))
GLOBEX = account("GLOBEX-002", package("desk", "320.00", timing="arrears"), currency="GBP")
INITECH = account("INITECH-003", package("locker", "9000"), currency="JPY", email=None)


def test_importing_the_same_document_twice_changes_nothing(billing: Billing) -> None:
    first = run_import(billing, ACME, GLOBEX, INITECH)
    head = billing.queries.head()

    again = run_import(billing, ACME, GLOBEX, INITECH)

    assert billing.queries.head() == head
    assert (first.accounts_opened, first.packages_added) == (3, 4)
    assert again == ImportSummary(
        accounts_opened=0,
        accounts_changed=0,
        accounts_unchanged=3,
        packages_added=0,
        charges_added=0,
        usage_recorded=0,
        contracts_agreed=0,
        events=0,
    )


def test_re_importing_after_a_bill_run_changes_nothing(billing: Billing) -> None:
    """Billing moves the packages' next bill dates on; the file still says what it
    said, and that must not read as a change."""
    with_next_bill_date = account(
        "ACME-001", package("office", "1200.00", next_bill_date="2026-02-01")
    )
    run_import(billing, with_next_bill_date, GLOBEX)
    schedule_run(billing, "2026-q1", Period(date(2026, 1, 1), date(2026, 3, 31)), None, Selection())
    run = BillRunExecutor(billing, 100).execute("2026-q1").run
    assert run.statistics.lines > 0
    head = billing.queries.head()

    summary = run_import(billing, with_next_bill_date, GLOBEX)

    assert billing.queries.head() == head
    assert summary.accounts_unchanged == 2


def test_a_changed_document_updates_details_and_packages_with_the_right_events(
    billing: Billing,
) -> None:
    run_import(billing, ACME, GLOBEX)
    before = {a: len(history(billing, a)) for a in ("ACME-001", "GLOBEX-002")}
    changed = {
        **ACME,
        "name": "ACME Holdings",
        "invoice_email": None,
        "bill_group": "key-accounts",
        "packages": [
            package("office", "1250.00", end_date="2026-12-31"),
            {**package("mail", "45.00", "quarterly"), "description": "Mail handling"},
            package("parking", "60.00"),
        ],
    }

    summary = run_import(billing, changed, GLOBEX)

    assert (summary.accounts_changed, summary.accounts_unchanged) == (1, 1)
    assert summary.packages_added == 1
    new_events = history(billing, "ACME-001")[before["ACME-001"] :]
    assert [type(e) for e in new_events] == [
        AccountDetailsChanged,
        PackageRevised,
        PackageRevised,
        PackageSubscribed,
    ]
    details, office, mail, parking = new_events
    assert (details.name, details.invoice_email, details.bill_group) == (
        "ACME Holdings",
        None,
        "key-accounts",
    )
    assert (office.terms.package_id, office.terms.amount, office.terms.end_date) == (
        "office",
        Decimal("1250.00"),
        date(2026, 12, 31),
    )
    assert (mail.terms.package_id, mail.terms.description, mail.terms.amount) == (
        "mail",
        "Mail handling",
        Decimal("45.00"),
    )
    assert parking.terms.package_id == "parking"
    assert len(history(billing, "GLOBEX-002")) == before["GLOBEX-002"]

    acme = billing.get_account("ACME-001")
    assert (acme.name, acme.invoice_email, acme.bill_group) == (
        "ACME Holdings",
        None,
        "key-accounts",
    )
    assert acme.packages["office"].terms.amount == Decimal("1250.00")
    assert acme.packages["office"].terms.end_date == date(2026, 12, 31)
    assert summary.events == len(new_events)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"currency": "USD"}, "accounts[1].currency"),
        ({"packages": [package("desk", "320.00", "quarterly", "arrears")]},
         "accounts[1].packages[0].frequency"),
        ({"packages": [package("desk", "320.00", timing="advance")]},
         "accounts[1].packages[0].timing"),
        ({"packages": [package("desk", "320.00", timing="arrears", start_date="2026-01-15")]},
         "accounts[1].packages[0].start_date"),
        ({"packages": [package("desk", "320.00", timing="arrears", anchor_date="2025-12-15")]},
         "accounts[1].packages[0].anchor_date"),
    ],
    ids=["currency", "frequency", "timing", "start_date", "anchor_date"],
)  # fmt: skip
def test_a_change_the_history_forbids_is_refused_with_its_path_and_writes_nothing(
    billing: Billing, change: dict[str, Any], path: str
) -> None:
    run_import(billing, ACME, GLOBEX)
    head = billing.queries.head()
    # Everything else in the file is a valid change, which must not be written either.
    renamed = {**ACME, "name": "ACME renamed"}

    with pytest.raises(InvalidInput) as refused:
        run_import(billing, renamed, {**GLOBEX, **change}, INITECH)

    assert [p.path for p in refused.value.problems] == [path]
    assert "nothing written" in str(refused.value)
    assert billing.queries.head() == head
    assert billing.get_account("ACME-001").name == "ACME-001 Ltd"


def test_a_bad_record_anywhere_in_the_file_writes_nothing_at_all(billing: Billing) -> None:
    run_import(billing, ACME)
    count = event_count(billing)
    bad = account("BAD-002", package("desk", "12,00"))
    document = {"accounts": [{**ACME, "name": "ACME renamed"}, bad, GLOBEX]}

    with pytest.raises(InvalidInput) as refused:
        import_accounts(
            billing, parse_import(json.dumps(document).encode(), "accounts.json"), "accounts.json"
        )

    assert problems_of(refused) == ['accounts[1].packages[0].amount: not a decimal: "12,00"']
    assert event_count(billing) == count


def test_every_problem_of_a_bad_file_is_listed_with_its_path(billing: Billing) -> None:
    document = {
        "accounts": [
            account("A-1", package("p", "12,00")),
            {**account("A-2", package("p", "1.005")), "currency": "EUR"},
            account("A-1", package("p", "1.00", "weekly", next_bill_date="2026-01-02")),
        ],
        "extra": True,
    }

    with pytest.raises(InvalidInput) as refused:
        parse_import(json.dumps(document).encode(), "accounts.json")

    assert problems_of(refused) == [
        'accounts[0].packages[0].amount: not a decimal: "12,00"',
        'accounts[1].packages[0].amount: "1.005" has more decimals than EUR allows (2)',
        'accounts[2].id: duplicate of accounts[0].id: "A-1"',
        "accounts[2].packages[0].frequency: must be one of 'monthly', 'quarterly' or "
        "'yearly', not \"weekly\"",
        "extra: unknown field",
    ]
    assert event_count(billing) == 0


def test_a_history_problem_in_a_later_chunk_refuses_the_whole_import(
    billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks are saved one by one, so every chunk must be checked before any is saved."""
    monkeypatch.setattr(billing_module, "IMPORT_CHUNK", 10)
    accounts = [account(f"C-{i:03d}", package("office", "100.00")) for i in range(35)]
    run_import(billing, *accounts)
    count = event_count(billing)
    changed = [{**a, "name": "renamed"} for a in accounts]
    changed[3] = {**changed[3], "currency": "GBP"}
    changed[32] = {**changed[32], "currency": "USD"}

    with pytest.raises(InvalidInput) as refused:
        run_import(billing, *changed)

    assert [p.path for p in refused.value.problems] == [
        "accounts[3].currency",
        "accounts[32].currency",
    ]
    assert event_count(billing) == count
    assert billing.get_account("C-000").name == "C-000 Ltd"


def test_a_few_thousand_accounts_are_imported_in_one_transaction(billing: Billing) -> None:
    count = 2 * billing_module.IMPORT_CHUNK + 500
    accounts = [
        account(f"BULK-{i:05d}", package("office", f"{100 + i % 50}.00"), bill_group=f"g{i % 7}")
        for i in range(count)
    ]

    summary = run_import(billing, *accounts)

    assert summary == ImportSummary(
        accounts_opened=count,
        accounts_changed=0,
        accounts_unchanged=0,
        packages_added=count,
        charges_added=0,
        usage_recorded=0,
        contracts_agreed=0,
        events=2 * count,
    )
    assert billing.queries.count(topic_of(AccountOpened), billing.queries.head()) == count
    # Checked in chunks, saved in one transaction: PostgreSQL stamps each row with its
    # inserting transaction (xmin), and the rows of the import share one.
    with billing.recorder.datastore.transaction(commit=False) as curs:
        curs.execute(f"SELECT count(DISTINCT xmin::text) AS n FROM {billing.queries.table_name}")
        row = curs.fetchone()
    assert row is not None and row["n"] == 1
    last = billing.get_account(f"BULK-{count - 1:05d}")
    assert (last.bill_group, last.packages["office"].terms.amount) == (
        f"g{(count - 1) % 7}",
        Decimal(f"{100 + (count - 1) % 50}.00"),
    )
    head = billing.queries.head()
    assert run_import(billing, *accounts).accounts_unchanged == count
    assert billing.queries.head() == head


# Tax rates, categories, anchor dates, charges and usage ---------------------------------

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))


def billed_account(**changes: Any) -> dict[str, Any]:
    """An account with everything the file can say about billing."""
    record = {
        **account(
            "ACME-001",
            package("office", "1200.00"),
            package(
                "calls",
                "31.00",
                start_date="2026-01-15",
                anchor_date="2026-01-01",
                category="telephony",
                tax_rate="7.5",
                usage_rate="0.015",
            ),
        ),
        "tax_rate": "20",
        "charges": [
            {"id": "setup", "description": "Set-up fee", "amount": "50.00", "date": "2026-01-10"},
            {"id": "goodwill", "description": "Goodwill credit", "amount": "-20.00",
             "date": "2026-01-20", "category": "credits", "tax_rate": "0"},
        ],
        "usage": [
            {"id": "u-1", "package_id": "calls", "quantity": "1000", "occurred_on": "2026-01-16"},
            {"id": "u-2", "package_id": "calls", "quantity": "333", "occurred_on": "2026-01-20"},
            {"id": "u-3", "package_id": "calls", "quantity": "2.5", "occurred_on": "2026-01-25",
             "unit_price": "1.25", "description": "Operator assistance"},
            {"id": "u-4", "package_id": "calls", "quantity": "100", "occurred_on": "2026-02-03"},
        ],
    }  # fmt: skip
    return {**record, **changes}


YEN = {
    **account("YEN-002", package("locker", "9000"), currency="JPY"),
    "tax_rate": "10",
    "charges": [{"id": "key", "description": "Spare key", "amount": "500", "date": "2026-01-31"}],
}


def bill(app: Billing, run_id: str, period: Period) -> None:
    schedule_run(app, run_id, period, None, Selection())
    BillRunExecutor(app, 100).execute(run_id)


def lines_of(app: Billing, run_id: str, account_id: str) -> list[tuple[Any, ...]]:
    invoice = app.get_invoice(invoice_uuid(run_id, account_id))
    return [
        (
            line.kind,
            line.source,
            line.description,
            line.category,
            line.service_period_start,
            line.service_period_end,
            line.quantity,
            line.unit_amount,
            line.amount,
            line.tax_rate,
            line.tax,
            line.rule,
        )
        for line in invoice.lines
    ]


def test_an_imported_file_is_billed_with_its_tax_rates_categories_anchors_charges_and_usage(
    billing: Billing,
) -> None:
    summary = run_import(billing, billed_account(), YEN)

    assert summary == ImportSummary(
        accounts_opened=2,
        accounts_changed=0,
        accounts_unchanged=0,
        packages_added=3,
        charges_added=3,
        usage_recorded=4,
        contracts_agreed=0,
        events=2 + 3 + 3 + 4,
    )
    bill(billing, "2026-01", JANUARY)

    d = Decimal
    jan1, jan31 = date(2026, 1, 1), date(2026, 1, 31)
    assert lines_of(billing, "2026-01", "ACME-001") == [
        (LineKind.RECURRING, "package:office", "Office", "services", jan1, jan31,
         d(1), d("1200.00"), d("1200.00"), d(20), d("240.00"), "recurring:monthly:advance"),
        # Anchored on the 1st, started on the 15th: 17 of January's 31 days.
        (LineKind.RECURRING, "package:calls", "Calls", "telephony", date(2026, 1, 15), jan31,
         d(1), d("17.00"), d("17.00"), d("7.5"), d("1.28"),
         "recurring:monthly:advance:prorated:17/31"),
        # 1333 units at the package's usage rate: 19.995, rounded once.
        (LineKind.USAGE, "usage:calls", "Calls", "telephony", date(2026, 1, 16),
         date(2026, 1, 20), d(1333), d("0.015"), d("20.00"), d("7.5"), d("1.50"),
         "usage:2-records"),
        (LineKind.USAGE, "usage:calls", "Operator assistance", "telephony", date(2026, 1, 25),
         date(2026, 1, 25), d("2.5"), d("1.25"), d("3.13"), d("7.5"), d("0.23"),
         "usage:1-records"),
        (LineKind.CHARGE, "charge:setup", "Set-up fee", "charges", date(2026, 1, 10),
         date(2026, 1, 10), d(1), d("50.00"), d("50.00"), d(20), d("10.00"), "one-off"),
        (LineKind.CHARGE, "charge:goodwill", "Goodwill credit", "credits", date(2026, 1, 20),
         date(2026, 1, 20), d(1), d("-20.00"), d("-20.00"), d(0), d("0.00"), "one-off"),
    ]  # fmt: skip
    acme = billing.get_invoice(invoice_uuid("2026-01", "ACME-001"))
    assert (acme.subtotal, acme.tax, acme.total) == (d("1270.13"), d("253.01"), d("1523.14"))
    yen = billing.get_invoice(invoice_uuid("2026-01", "YEN-002"))
    assert [(line.source, line.amount, line.tax) for line in yen.lines] == [
        ("package:locker", d(9000), d(900)),
        ("charge:key", d(500), d(50)),
    ]
    assert (yen.subtotal, yen.tax, yen.total) == (d(9500), d(950), d(10450))

    # Re-importing the same file after the run changes nothing: the charges and
    # usage it billed are left alone, and the usage it did not bill waits.
    head = billing.queries.head()
    again = run_import(billing, billed_account(), YEN)
    assert billing.queries.head() == head
    assert (again.accounts_unchanged, again.events) == (2, 0)

    # February bills the full calls period and February's usage, nothing twice.
    bill(billing, "2026-02", FEBRUARY)
    assert [(line[1], line[8], line[10]) for line in lines_of(billing, "2026-02", "ACME-001")] == [
        ("package:office", d("1200.00"), d("240.00")),
        ("package:calls", d("31.00"), d("2.33")),
        ("usage:calls", d("1.50"), d("0.11")),
    ]


def test_re_importing_a_file_with_charges_and_usage_is_a_no_op(billing: Billing) -> None:
    run_import(billing, billed_account(), YEN)
    head = billing.queries.head()

    again = run_import(billing, billed_account(), YEN)

    assert billing.queries.head() == head
    assert again == ImportSummary(
        accounts_opened=0,
        accounts_changed=0,
        accounts_unchanged=2,
        packages_added=0,
        charges_added=0,
        usage_recorded=0,
        contracts_agreed=0,
        events=0,
    )


def test_a_later_file_adds_charges_and_usage_to_packages_imported_before(
    billing: Billing,
) -> None:
    run_import(billing, billed_account())
    before = len(history(billing, "ACME-001"))
    # Next month's file: the same account, no packages, only new records; usage
    # may name a package imported before, and leaving out old records is fine.
    later = billed_account(
        packages=[],
        charges=[{"id": "late-fee", "description": "Late fee", "amount": "5.00",
                  "date": "2026-02-05"}],
        usage=[{"id": "u-5", "package_id": "calls", "quantity": "10",
                "occurred_on": "2026-02-10"}],
    )  # fmt: skip

    summary = run_import(billing, later)

    assert (summary.accounts_changed, summary.charges_added, summary.usage_recorded) == (1, 1, 1)
    assert [type(e) for e in history(billing, "ACME-001")[before:]] == [ChargeAdded, UsageRecorded]
    acme = billing.get_account("ACME-001")
    assert set(acme.charges) == {"setup", "goodwill", "late-fee"}
    assert acme.usage["u-5"].unit_price == Decimal("0.015")
    assert set(acme.packages["calls"].unbilled_usage) == {"u-1", "u-2", "u-3", "u-4", "u-5"}


def test_a_revised_package_prices_new_usage_and_leaves_recorded_usage_alone(
    billing: Billing,
) -> None:
    run_import(billing, billed_account())
    before = len(history(billing, "ACME-001"))
    revised = billed_account()
    revised["packages"] = [
        revised["packages"][0],
        {**revised["packages"][1], "usage_rate": "0.02", "category": "voice", "tax_rate": "5"},
    ]
    revised["usage"] = [
        *revised["usage"],
        {"id": "u-6", "package_id": "calls", "quantity": "50", "occurred_on": "2026-02-11"},
    ]
    # Written differently, the same schedule: the start date as an explicit anchor.
    revised["packages"][0] = {**revised["packages"][0], "anchor_date": "2026-01-01"}

    summary = run_import(billing, revised)

    new_events = history(billing, "ACME-001")[before:]
    assert [type(e) for e in new_events] == [PackageRevised, UsageRecorded]
    calls = new_events[0].terms
    assert (calls.usage_rate, calls.category, calls.tax_rate, calls.anchor_date) == (
        Decimal("0.02"),
        "voice",
        Decimal(5),
        date(2026, 1, 1),
    )
    acme = billing.get_account("ACME-001")
    # u-1 was priced when it was recorded; the file still lists it without a price.
    assert (acme.usage["u-1"].unit_price, acme.usage["u-6"].unit_price) == (
        Decimal("0.015"),
        Decimal("0.02"),
    )
    assert acme.packages["office"].terms.anchor_date is None
    assert (summary.accounts_changed, summary.usage_recorded, summary.events) == (1, 1, 2)


def test_a_file_the_store_refuses_lists_every_problem_and_writes_nothing(
    billing: Billing,
) -> None:
    run_import(billing, billed_account(), YEN)
    bill(billing, "2026-01", JANUARY)
    head = billing.queries.head()
    changed = billed_account(name="ACME renamed", tax_rate="21")  # valid, but not written
    changed["charges"] = [
        {**changed["charges"][0], "amount": "55.00"},  # billed already, and changed
        changed["charges"][1],
        {"id": "new-fee", "description": "New fee", "amount": "5.00", "date": "2026-02-01"},
    ]
    changed["usage"] = [
        {**changed["usage"][0], "quantity": "1001"},
        {**changed["usage"][1], "unit_price": "0.02"},
        {"id": "u-9", "package_id": "fax", "quantity": "1", "occurred_on": "2026-02-01"},
        {"id": "u-10", "package_id": "calls", "quantity": "1", "occurred_on": "2026-02-01"},
    ]
    changed["packages"] = [
        {**changed["packages"][0], "anchor_date": "2025-12-15"},
        changed["packages"][1],
    ]
    new_yen = {**YEN, "charges": [{**YEN["charges"][0], "tax_rate": "0"}]}

    with pytest.raises(InvalidInput) as refused:
        run_import(billing, changed, new_yen)

    assert problems_of(refused) == [
        "accounts[0].packages[0].anchor_date: cannot change from 2026-01-01 to 2025-12-15: "
        "add a new package instead",
        'accounts[0].charges[0].amount: charge "setup" was imported with amount "50.00"; '
        "an imported charge cannot change (add a correcting charge or credit under a new id)",
        'accounts[0].usage[0].quantity: usage "u-1" was recorded with quantity "1000"; '
        "recorded usage cannot change (record the difference under a new id)",
        'accounts[0].usage[1].unit_price: usage "u-2" was recorded with unit_price "0.015"; '
        "recorded usage cannot change (record the difference under a new id)",
        'accounts[0].usage[2].package_id: account ACME-001 has no package "fax", '
        "in this file or imported before",
        'accounts[1].charges[0].tax_rate: charge "key" was imported with tax_rate none; '
        "an imported charge cannot change (add a correcting charge or credit under a new id)",
    ]
    assert "nothing written" in str(refused.value)
    assert billing.queries.head() == head
    acme = billing.get_account("ACME-001")
    assert (acme.name, acme.tax_rate) == ("ACME-001 Ltd", Decimal(20))
    assert "new-fee" not in acme.charges and "u-10" not in acme.usage


def test_usage_the_domain_refuses_is_reported_with_its_path(billing: Billing) -> None:
    """Usage of a package imported before is checked by the account itself."""
    run_import(billing, billed_account())
    office_usage = billed_account(
        packages=[],
        usage=[{"id": "u-7", "package_id": "office", "quantity": "1", "occurred_on": "2026-01-05"},
               {"id": "u-8", "package_id": "calls", "quantity": "1", "occurred_on": "2026-01-05"}],
    )  # fmt: skip
    head = billing.queries.head()

    with pytest.raises(InvalidInput) as refused:
        run_import(billing, office_usage)

    assert problems_of(refused) == [
        "accounts[0].usage[0]: usage u-7: no unit price given and package office has no usage rate",
        "accounts[0].usage[1]: usage u-8: occurred on 2026-01-05, outside package calls "
        "(2026-01-15)",
    ]
    assert billing.queries.head() == head


def test_leaving_out_an_anchor_date_imported_before_is_a_schedule_change(
    billing: Billing,
) -> None:
    run_import(billing, billed_account())
    head = billing.queries.head()
    record = billed_account()
    record["packages"] = [
        record["packages"][0],
        {k: v for k, v in record["packages"][1].items() if k != "anchor_date"},
    ]

    with pytest.raises(InvalidInput) as refused:
        run_import(billing, record)

    assert problems_of(refused) == [
        "accounts[0].packages[1].anchor_date: cannot change from 2026-01-01 to 2026-01-15: "
        "add a new package instead"
    ]
    assert billing.queries.head() == head


def test_a_lone_surrogate_deep_in_a_large_file_is_refused_before_anything_is_written(
    billing: Billing,
) -> None:
    accounts = [account(f"BULK-{i:05d}", package("office", "10.00")) for i in range(2500)]
    accounts[2200]["name"] = "Customer \ud800 Ltd"

    with pytest.raises(InvalidInput) as refused:
        run_import(billing, *accounts)

    assert [str(p) for p in refused.value.problems] == [
        'accounts[2200].name: "Customer \\ud800 Ltd" holds a lone surrogate (U+D800) at position 10'
    ]
    assert event_count(billing) == 0


def test_a_save_that_fails_past_the_first_chunks_writes_none_of_the_file(
    billing: Billing,
) -> None:
    # What validation lets through is saved whole or not at all: a record built
    # past validation, whose text PostgreSQL refuses, sinks the whole file.
    records = list(
        parse_import(
            json.dumps({"accounts": [account(f"BULK-{i:05d}") for i in range(2500)]}).encode(),
            "accounts.json",
        ).accounts
    )
    records[2200] = records[2200].model_copy(update={"name": "Customer \ud800 Ltd"})
    document = parse_import(b"{}", "accounts.json").model_copy(update={"accounts": records})

    with pytest.raises(TypeError, match="not valid UTF-8"):
        import_accounts(billing, document, "accounts.json")

    assert event_count(billing) == 0
