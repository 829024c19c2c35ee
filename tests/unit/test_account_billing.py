"""Billing an account's packages: what a window bills, once, with its provenance."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from domain.billing.account import Account
from domain.billing.events import AccountOpened, PackageBilled, PackageSubscribed
from domain.billing.terms import PackageTerms
from domain.shared.errors import AccountError, DomainError, NotABillDate
from domain.shared.ids import account_uuid, package_line_uuid
from domain.shared.periods import Frequency, Period, Timing

AT = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)


def d(iso: str) -> date:
    return date.fromisoformat(iso)


def window(start: str, end: str) -> Period:
    return Period(d(start), d(end))


def terms(
    package_id: str = "office",
    amount: str = "100.00",
    frequency: str = "monthly",
    timing: str = "advance",
    start_date: str = "2026-01-01",
    end_date: str | None = None,
) -> PackageTerms:
    return PackageTerms(
        package_id=package_id,
        description=package_id.title(),
        amount=Decimal(amount),
        frequency=Frequency(frequency),
        timing=Timing(timing),
        start_date=d(start_date),
        end_date=None if end_date is None else d(end_date),
    )


def open_account(*packages: PackageTerms, currency: str = "EUR") -> Account:
    account = Account.open("ACME-001", "Acme Ltd", currency, "ap@acme.test", "monthly", AT)
    for package in packages:
        account.subscribe(package, None, AT)
    return account


def billed(account: Account, start: str, end: str, run_id: str = "2026-Q1") -> list[str]:
    """Bill a window and describe each line as `package service-period amount`."""
    lines = account.bill_packages(run_id, window(start, end), d(end), LATER)
    return [
        f"{line.source} {line.service_period_start}..{line.service_period_end} {line.amount}"
        for line in lines
    ]


# -- Opening and subscribing ---------------------------------------------------


def test_an_account_is_identified_by_uuid5_of_its_natural_id():
    account = open_account()
    assert account.id == account_uuid("ACME-001")
    assert account.version == 1
    assert (account.account_id, account.currency, account.bill_group) == (
        "ACME-001",
        "EUR",
        "monthly",
    )


@pytest.mark.parametrize(
    ("account_id", "currency", "reason"),
    [("", "EUR", "non-empty id"), ("   ", "EUR", "non-empty id"), ("ACME", "XXX", "currency")],
)
def test_an_account_needs_an_id_and_a_known_currency(account_id, currency, reason):
    with pytest.raises(AccountError, match=reason):
        Account.open(account_id, "Acme", currency, None, "monthly", AT)


@pytest.mark.parametrize(
    ("timing", "next_bill_date"),
    [("advance", "2026-01-01"), ("arrears", "2026-02-01")],
)
def test_the_default_next_bill_date_is_the_start_for_advance_and_one_step_later_for_arrears(
    timing, next_bill_date
):
    account = open_account(terms(timing=timing))
    assert account.packages["office"].next_bill_date == d(next_bill_date)


def test_a_next_bill_date_on_the_schedule_is_where_billing_resumes():
    account = open_account(terms("office"))
    account.subscribe(terms("phone", start_date="2025-10-31"), d("2026-02-28"), AT)
    assert account.packages["phone"].next_bill_date == d("2026-02-28")
    # office is due on Jan 1, before the window: Jan 1 stays owed (stranded) and the
    # run bills office's bill dates in its window; phone resumes on its Feb 28
    assert billed(account, "2026-02-01", "2026-03-31") == [
        "package:office 2026-02-01..2026-02-28 100.00",
        "package:office 2026-03-01..2026-03-31 100.00",
        "package:phone 2026-02-28..2026-03-30 100.00",
        "package:phone 2026-03-31..2026-04-29 100.00",
    ]
    assert account.owed() == [("office", d("2026-01-01"))]


@pytest.mark.parametrize(
    ("package", "next_bill_date", "refusal"),
    [
        (terms(), "2026-01-15", NotABillDate),
        (terms(frequency="quarterly"), "2026-02-01", NotABillDate),
        (terms(timing="arrears"), "2026-01-01", AccountError),
    ],
    ids=["off a monthly schedule", "off a quarterly schedule", "arrears billed at its start"],
)
def test_a_next_bill_date_must_be_a_bill_date_the_package_can_bill_on(
    package, next_bill_date, refusal
):
    account = open_account()
    with pytest.raises(refusal):
        account.subscribe(package, d(next_bill_date), AT)


# -- What a window bills -------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "start", "end", "lines"),
    [
        pytest.param(
            terms(),
            "2026-01-01",
            "2026-03-31",
            [
                "package:office 2026-01-01..2026-01-31 100.00",
                "package:office 2026-02-01..2026-02-28 100.00",
                "package:office 2026-03-01..2026-03-31 100.00",
            ],
            id="three months bill a monthly package three times",
        ),
        pytest.param(
            terms(frequency="quarterly", amount="300.00"),
            "2026-01-01",
            "2026-03-31",
            ["package:office 2026-01-01..2026-03-31 300.00"],
            id="three months bill a quarterly package once",
        ),
        pytest.param(
            terms(frequency="yearly", amount="1200.00"),
            "2026-01-01",
            "2026-12-31",
            ["package:office 2026-01-01..2026-12-31 1200.00"],
            id="a year bills a yearly package once",
        ),
        pytest.param(
            terms(start_date="2026-01-31"),
            "2026-01-01",
            "2026-04-30",
            [
                "package:office 2026-01-31..2026-02-27 100.00",
                "package:office 2026-02-28..2026-03-30 100.00",
                "package:office 2026-03-31..2026-04-29 100.00",
                "package:office 2026-04-30..2026-05-30 100.00",
            ],
            id="a package started on jan 31 bills on the last day of short months",
        ),
        pytest.param(
            terms(timing="arrears"),
            "2026-01-01",
            "2026-03-31",
            [
                "package:office 2026-01-01..2026-01-31 100.00",
                "package:office 2026-02-01..2026-02-28 100.00",
            ],
            id="arrears bills the period ending the day before each bill date",
        ),
        pytest.param(
            terms(start_date="2026-02-15"),
            "2026-01-01",
            "2026-01-31",
            [],
            id="a package that has not started bills nothing",
        ),
        pytest.param(
            terms(),
            "2026-02-01",
            "2026-03-31",
            [
                "package:office 2026-02-01..2026-02-28 100.00",
                "package:office 2026-03-01..2026-03-31 100.00",
            ],
            id="a bill date before the window start is not billed, those in it are",
        ),
        pytest.param(
            terms(end_date="2026-02-15"),
            "2026-01-01",
            "2026-04-30",
            [
                "package:office 2026-01-01..2026-01-31 100.00",
                "package:office 2026-02-01..2026-02-15 53.57",
            ],
            id="an ended advance package bills its last days pro rata, nothing after",
        ),
        pytest.param(
            terms(end_date="2026-03-01"),
            "2026-01-01",
            "2026-04-30",
            [
                "package:office 2026-01-01..2026-01-31 100.00",
                "package:office 2026-02-01..2026-02-28 100.00",
                "package:office 2026-03-01..2026-03-01 3.23",
            ],
            id="a period starting on the end date bills that one day",
        ),
        pytest.param(
            terms(timing="arrears", end_date="2026-03-15"),
            "2026-01-01",
            "2026-06-30",
            [
                "package:office 2026-01-01..2026-01-31 100.00",
                "package:office 2026-02-01..2026-02-28 100.00",
                "package:office 2026-03-01..2026-03-15 48.39",
            ],
            id="an ended arrears package bills its last days after it ends",
        ),
    ],
)
def test_a_window_bills_every_bill_date_it_contains(package, start, end, lines):
    account = open_account(package)
    assert billed(account, start, end) == lines


def test_a_bill_date_before_the_window_is_left_for_a_run_whose_window_covers_it():
    account = open_account(terms())
    assert billed(account, "2026-02-01", "2026-02-28") == [
        "package:office 2026-02-01..2026-02-28 100.00"
    ]
    assert account.packages["office"].next_bill_date == d("2026-03-01")
    assert account.stranded(Period(d("2026-02-01"), d("2026-02-28"))) == [
        ("office", d("2026-01-01"))
    ]
    assert billed(account, "2026-01-01", "2026-01-31") == [
        "package:office 2026-01-01..2026-01-31 100.00"
    ]
    assert account.owed() == []


def test_billing_the_same_window_twice_bills_nothing_the_second_time():
    account = open_account(terms(), terms("phone", amount="19.99", frequency="quarterly"))
    first = billed(account, "2026-01-01", "2026-03-31")
    version = account.version
    account.collect_events()
    assert len(first) == 4
    assert billed(account, "2026-01-01", "2026-03-31", run_id="2026-Q1-again") == []
    assert account.version == version
    assert account.collect_events() == []


def test_consecutive_windows_bill_each_period_once():
    account = open_account(terms())
    months = [("2026-01-01", "2026-01-31"), ("2026-02-01", "2026-02-28")]
    lines = [line for start, end in months for line in billed(account, start, end)]
    assert lines == [
        "package:office 2026-01-01..2026-01-31 100.00",
        "package:office 2026-02-01..2026-02-28 100.00",
    ]
    assert account.packages["office"].next_bill_date == d("2026-03-01")


def test_an_ended_package_stays_ended_in_later_windows():
    account = open_account(terms(end_date="2026-01-20"))
    assert len(billed(account, "2026-01-01", "2026-01-31")) == 1
    assert billed(account, "2026-02-01", "2026-02-28") == []
    assert billed(account, "2026-03-01", "2026-12-31") == []


# -- Provenance and identity ---------------------------------------------------


def test_every_line_carries_its_provenance():
    account = open_account(terms("office", timing="arrears", frequency="quarterly"))
    [line] = account.bill_packages(
        "2026-04", window("2026-04-01", "2026-04-30"), d("2026-04-30"), LATER
    )
    assert line.run_id == "2026-04"
    assert line.account_id == "ACME-001"
    assert line.source == "package:office"
    assert (line.service_period_start, line.service_period_end) == (
        d("2026-01-01"),
        d("2026-03-31"),
    )
    assert line.posting_date == d("2026-04-30")
    assert line.rule == "recurring:quarterly:arrears"
    assert line.description == "Office"
    assert (line.quantity, line.unit_amount, line.amount, line.currency) == (
        Decimal(1),
        Decimal("100.00"),
        Decimal("100.00"),
        "EUR",
    )


def test_line_ids_are_uuid5_of_account_package_and_service_period_start():
    first = open_account(terms())
    lines = first.bill_packages("run-a", window("2026-01-01", "2026-02-28"), d("2026-02-28"), LATER)
    assert [line.line_id for line in lines] == [
        package_line_uuid("ACME-001", "office", d("2026-01-01")),
        package_line_uuid("ACME-001", "office", d("2026-02-01")),
    ]
    again = open_account(terms())
    other_run = again.bill_packages(
        "run-b", window("2026-01-01", "2026-02-28"), d("2026-02-28"), LATER
    )
    assert [line.line_id for line in other_run] == [line.line_id for line in lines]
    assert len({line.line_id for line in lines}) == 2


def test_a_package_billed_event_records_the_bill_date_and_the_next_one():
    account = open_account(terms(start_date="2026-01-31"))
    account.collect_events()
    billed(account, "2026-03-01", "2026-03-30")  # Jan 31 and Feb 28 lie before the window
    assert account.collect_events() == []
    billed(account, "2026-01-01", "2026-02-28")
    events = account.collect_events()
    assert [type(e) for e in events] == [PackageBilled, PackageBilled]
    assert [(e.bill_date, e.next_bill_date) for e in events] == [
        (d("2026-01-31"), d("2026-02-28")),
        (d("2026-02-28"), d("2026-03-31")),
    ]
    assert [e.originator_version for e in events] == [3, 4]
    assert all(e.timestamp == LATER and e.run_id == "2026-Q1" for e in events)


# -- Amounts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount"),
    [("EUR", "100.001"), ("EUR", "0.005"), ("JPY", "100.5"), ("KWD", "1.0001"), ("CLF", "1.00001")],
)
def test_an_amount_with_more_decimals_than_the_currency_allows_is_refused(currency, amount):
    account = open_account(currency=currency)
    account.collect_events()
    with pytest.raises(AccountError, match="more decimals than"):
        account.subscribe(terms(amount=amount), None, AT)
    assert account.packages == {}
    assert account.collect_events() == []


@pytest.mark.parametrize(
    ("currency", "amount", "line_amount"),
    [
        ("EUR", "100", "100.00"),
        ("EUR", "99.9", "99.90"),
        ("JPY", "1200", "1200"),
        ("KWD", "1.001", "1.001"),
        ("CLF", "0.0001", "0.0001"),
    ],
)
def test_a_line_amount_is_held_at_the_currencys_minor_unit(currency, amount, line_amount):
    account = open_account(terms(amount=amount), currency=currency)
    [line] = account.bill_packages("r", window("2026-01-01", "2026-01-31"), d("2026-01-31"), LATER)
    assert str(line.amount) == line_amount
    assert str(line.unit_amount) == line_amount


# -- Refused commands record nothing ---------------------------------------------


@pytest.mark.parametrize(
    ("package", "next_bill_date", "refusal"),
    [
        pytest.param(terms("office"), None, "already has package", id="duplicate package"),
        pytest.param(
            terms("desk", start_date="2026-03-01", end_date="2026-02-28"),
            None,
            "before its start date",
            id="end before start",
        ),
        pytest.param(terms("desk", amount="1.999"), None, "more decimals", id="too many decimals"),
        pytest.param(terms("desk"), "2026-01-02", "not a bill date", id="off the schedule"),
        pytest.param(
            terms("desk", timing="arrears"),
            "2026-01-01",
            "before the first bill date",
            id="arrears",
        ),
    ],
)
def test_a_refused_subscription_records_no_event_and_changes_nothing(
    package, next_bill_date, refusal
):
    account = open_account(terms("office"))
    account.collect_events()
    version, packages = account.version, dict(account.packages)
    with pytest.raises((AccountError, NotABillDate), match=refusal):
        account.subscribe(package, None if next_bill_date is None else d(next_bill_date), LATER)
    assert account.collect_events() == []
    assert not account.has_pending_events
    assert account.version == version
    assert account.packages == packages


def test_a_successful_command_records_exactly_its_events():
    account = Account.open("ACME-001", "Acme Ltd", "EUR", None, "monthly", AT)
    assert [type(e) for e in account.collect_events()] == [AccountOpened]
    account.subscribe(terms(), None, AT)
    assert [type(e) for e in account.collect_events()] == [PackageSubscribed]
    assert account.collect_events() == []


@pytest.mark.parametrize(
    ("amount", "end_date", "refusal"),
    [
        ("100.001", None, "more decimals"),
        ("100.00", "2025-12-31", "before its start date"),
    ],
    ids=["too many decimals", "end before start"],
)
def test_a_refused_amendment_records_no_event_and_changes_nothing(amount, end_date, refusal):
    account = open_account(terms())
    account.collect_events()
    before = account.packages["office"].terms
    with pytest.raises(AccountError, match=refusal):
        account.amend_package(
            "office", "Office", Decimal(amount), None if end_date is None else d(end_date), LATER
        )
    assert account.collect_events() == []
    assert account.packages["office"].terms == before


def test_amending_an_unknown_package_is_refused():
    account = open_account()
    with pytest.raises(AccountError, match="has no package 'desk'"):
        account.amend_package("desk", "Desk", Decimal("1.00"), None, LATER)


def test_an_amended_end_date_stops_billing():
    account = open_account(terms())
    account.amend_package("office", "Office", Decimal("120.00"), d("2026-02-10"), LATER)
    assert billed(account, "2026-01-01", "2026-04-30") == [
        "package:office 2026-01-01..2026-01-31 120.00",
        "package:office 2026-02-01..2026-02-10 42.86",
    ]


def test_changing_an_account_to_the_same_details_records_nothing():
    account = open_account()
    account.collect_events()
    account.change_details("Acme Ltd", "ap@acme.test", "monthly", LATER)
    assert account.collect_events() == []
    account.change_details("Acme Holdings", "ap@acme.test", "quarterly", LATER)
    assert len(account.collect_events()) == 1
    assert (account.name, account.bill_group) == ("Acme Holdings", "quarterly")


# -- Rebuilding from events ------------------------------------------------------


def state(account: Account) -> dict[str, object]:
    return {
        "id": account.id,
        "version": account.version,
        "created_on": account.created_on,
        "modified_on": account.modified_on,
        "account_id": account.account_id,
        "name": account.name,
        "currency": account.currency,
        "invoice_email": account.invoice_email,
        "bill_group": account.bill_group,
        "packages": {
            package_id: (package.terms, package.next_index, package.next_bill_date)
            for package_id, package in account.packages.items()
        },
    }


def test_an_account_rebuilt_from_its_events_has_the_same_state():
    account = open_account(
        terms(),
        terms("phone", amount="19.99", frequency="quarterly", timing="arrears"),
        terms("desk", start_date="2026-01-31", end_date="2026-02-15"),
    )
    billed(account, "2026-01-01", "2026-04-30")
    account.amend_package("office", "Office+", Decimal("110.00"), None, LATER)
    account.change_details("Acme Holdings", None, "quarterly", LATER)
    events = account.collect_events()

    rebuilt = Account.project(None, events)

    assert rebuilt is not None
    assert state(rebuilt) == state(account)
    assert not rebuilt.has_pending_events
    assert rebuilt.bill_packages(
        "next", window("2026-05-01", "2026-05-31"), d("2026-05-31"), LATER
    ) == account.bill_packages("next", window("2026-05-01", "2026-05-31"), d("2026-05-31"), LATER)


def test_an_account_rebuilt_from_its_events_round_tripped_through_json_has_the_same_state():
    account = open_account(terms(), terms("phone", amount="19.99", frequency="quarterly"))
    billed(account, "2026-01-01", "2026-03-31")
    events = account.collect_events()
    reloaded = [type(e).model_validate_json(e.model_dump_json()) for e in events]
    rebuilt = Account.project(None, reloaded)
    assert rebuilt is not None
    assert state(rebuilt) == state(account)


def test_an_event_out_of_order_is_refused_on_rebuild():
    account = open_account(terms())
    billed(account, "2026-01-01", "2026-02-28")
    events = account.collect_events()
    with pytest.raises(DomainError, match="does not follow version"):
        Account.project(None, [events[0], events[2]])
