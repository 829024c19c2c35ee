"""Importing accounts: idempotent, all or nothing, and refusing what history forbids."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.utils import get_topic

import application.billing as billing_module
from application.bill_run_executor import BillRunExecutor
from application.billing import Billing, ImportSummary
from application.errors import InvalidInput
from application.import_document import parse_import
from domain.account import (
    AccountDetailsChanged,
    AccountOpened,
    PackageAmended,
    PackageSubscribed,
)
from domain.bill_run import Selection
from domain.ids import account_uuid
from domain.periods import Period
from tests.conftest import account, package


def run_import(app: Billing, *accounts: dict[str, Any]) -> ImportSummary:
    """Import a document the way `billrun import` does: parse, then import."""
    raw = json.dumps({"accounts": list(accounts)}).encode()
    return app.import_accounts(parse_import(raw, "accounts.json"), "accounts.json")


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
        accounts_opened=0, accounts_changed=0, accounts_unchanged=3, packages_added=0, events=0
    )


def test_re_importing_after_a_bill_run_changes_nothing(billing: Billing) -> None:
    """Billing moves the packages' next bill dates on; the file still says what it
    said, and that must not read as a change."""
    with_next_bill_date = account(
        "ACME-001", package("office", "1200.00", next_bill_date="2026-02-01")
    )
    run_import(billing, with_next_bill_date, GLOBEX)
    billing.schedule_run("2026-q1", Period(date(2026, 1, 1), date(2026, 3, 31)), None, Selection())
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
        PackageAmended,
        PackageAmended,
        PackageSubscribed,
    ]
    details, office, mail, parking = new_events
    assert (details.name, details.invoice_email, details.bill_group) == (
        "ACME Holdings",
        None,
        "key-accounts",
    )
    assert (office.package_id, office.amount, office.end_date) == (
        "office",
        Decimal("1250.00"),
        date(2026, 12, 31),
    )
    assert (mail.package_id, mail.description, mail.amount) == (
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
    ],
    ids=["currency", "frequency", "timing", "start_date"],
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
        billing.import_accounts(
            parse_import(json.dumps(document).encode(), "accounts.json"), "accounts.json"
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


def test_a_few_thousand_accounts_are_imported_in_chunks(billing: Billing) -> None:
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
        events=2 * count,
    )
    assert billing.queries.count(get_topic(AccountOpened), billing.queries.head()) == count
    # One transaction per chunk: PostgreSQL stamps each row with its inserting
    # transaction (xmin), so the rows of the import come from three transactions.
    with billing.recorder.datastore.transaction(commit=False) as curs:
        curs.execute(f"SELECT count(DISTINCT xmin::text) AS n FROM {billing.queries.table_name}")
        row = curs.fetchone()
    assert row is not None and row["n"] == 3
    last = billing.get_account(f"BULK-{count - 1:05d}")
    assert (last.bill_group, last.packages["office"].terms.amount) == (
        f"g{(count - 1) % 7}",
        Decimal(f"{100 + (count - 1) % 50}.00"),
    )
    head = billing.queries.head()
    assert run_import(billing, *accounts).accounts_unchanged == count
    assert billing.queries.head() == head
