"""The import file: every problem reported with its path, in one pass."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from application.billing.import_document import (
    ImportDocument,
    format_path,
    json_schema,
    parse_import,
)
from application.shared.errors import InvalidInput
from domain.shared.periods import Frequency, Timing


def package(package_id: str = "office", **fields: Any) -> dict[str, Any]:
    return {
        "id": package_id,
        "description": package_id.title(),
        "amount": "100.00",
        "frequency": "monthly",
        "timing": "advance",
        "start_date": "2026-01-01",
        **fields,
    }


def account(account_id: str = "ACME-001", *packages: dict[str, Any], **fields: Any):
    return {
        "id": account_id,
        "name": f"{account_id} Ltd",
        "currency": "EUR",
        "invoice_email": "ap@acme.test",
        "bill_group": "monthly",
        "packages": list(packages),
        **fields,
    }


def document(*accounts: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({"accounts": list(accounts), **fields}).encode()


def problems(raw: bytes) -> list[str]:
    """Every problem the file has, as an operator reads it: `path: message`."""
    with pytest.raises(InvalidInput) as refused:
        parse_import(raw, "accounts.json")
    assert refused.value.source == "accounts.json"
    return [str(problem) for problem in refused.value.problems]


# -- A valid file ----------------------------------------------------------------------


def test_a_valid_document_parses():
    raw = document(
        account(
            "ACME-001",
            package("office"),
            package(
                "phone",
                amount="19.99",
                frequency="quarterly",
                timing="arrears",
                start_date="2026-01-31",
                next_bill_date="2026-04-30",
                end_date="2026-12-31",
            ),
        ),
        account("YEN-1", package("desk", amount="1200"), currency="JPY", invoice_email=""),
        {"id": "MIN-1", "name": "Minimal", "currency": "KWD"},
    )
    parsed = parse_import(raw, "accounts.json")
    assert isinstance(parsed, ImportDocument)
    acme, yen, minimal = parsed.accounts
    office, phone = acme.packages
    assert (office.amount, office.frequency, office.timing, office.next_bill_date) == (
        Decimal("100.00"),
        Frequency.MONTHLY,
        Timing.ADVANCE,
        None,
    )
    assert (phone.amount, phone.next_bill_date, phone.end_date) == (
        Decimal("19.99"),
        date(2026, 4, 30),
        date(2026, 12, 31),
    )
    assert (yen.currency, yen.invoice_email, yen.packages[0].amount) == (
        "JPY",
        None,
        Decimal("1200"),
    )
    assert (minimal.bill_group, minimal.invoice_email, minimal.packages) == ("default", None, [])


def test_an_empty_document_is_valid_and_imports_nothing():
    assert parse_import(b"{}", "empty.json").accounts == []
    assert parse_import(b'{"accounts": []}', "empty.json").accounts == []


def test_identifiers_are_trimmed_and_the_timing_defaults_to_advance():
    record = package(" office ")
    del record["timing"]
    parsed = parse_import(document(account(" ACME-001 ", record)), "accounts.json")
    assert parsed.accounts[0].id == "ACME-001"
    assert parsed.accounts[0].packages[0].id == "office"
    assert parsed.accounts[0].packages[0].timing is Timing.ADVANCE


# -- Field problems ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        pytest.param(
            account("A", package(amount="12,00")),
            'accounts[0].packages[0].amount: not a decimal: "12,00"',
            id="a comma decimal",
        ),
        pytest.param(
            account("A", package(amount=12.0)),
            'accounts[0].packages[0].amount: must be a decimal string such as "1200.00", not 12.0',
            id="a JSON float amount",
        ),
        pytest.param(
            account("A", package(amount=12)),
            'accounts[0].packages[0].amount: must be a decimal string such as "1200.00", not 12',
            id="a JSON integer amount",
        ),
        pytest.param(
            account("A", package(amount=True)),
            'accounts[0].packages[0].amount: must be a decimal string such as "1200.00", not true',
            id="a boolean amount",
        ),
        pytest.param(
            account("A", package(amount="NaN")),
            'accounts[0].packages[0].amount: not a decimal: "NaN"',
            id="not a number",
        ),
        pytest.param(
            account("A", package(amount="Infinity")),
            'accounts[0].packages[0].amount: not a decimal: "Infinity"',
            id="infinity",
        ),
        pytest.param(
            account("A", package(amount="100.001")),
            'accounts[0].packages[0].amount: "100.001" has more decimals than EUR allows (2)',
            id="more decimals than the currency allows",
        ),
        pytest.param(
            account("A", package(amount="100.5"), currency="JPY"),
            'accounts[0].packages[0].amount: "100.5" has more decimals than JPY allows (0)',
            id="a yen fraction",
        ),
        pytest.param(
            account("A", currency="XXX"),
            'accounts[0].currency: not an ISO 4217 currency code: "XXX"',
            id="an unknown currency",
        ),
        pytest.param(
            account("A", currency="eur"),
            'accounts[0].currency: not an ISO 4217 currency code: "eur"',
            id="a lower-case currency",
        ),
        pytest.param(
            account("A", invoice_email="ap.acme.test"),
            'accounts[0].invoice_email: not an email address: "ap.acme.test"',
            id="a bad email",
        ),
        pytest.param(
            account("A", invoice_email="ap@acme"),
            'accounts[0].invoice_email: not an email address: "ap@acme"',
            id="an email without a domain",
        ),
        pytest.param(
            account("A", name="  "),
            'accounts[0].name: must be a non-empty string, not "  "',
            id="a blank name",
        ),
        pytest.param(
            account("A", package(frequency="weekly")),
            "accounts[0].packages[0].frequency: must be one of "
            "'monthly', 'quarterly' or 'yearly', not \"weekly\"",
            id="an unknown frequency",
        ),
        pytest.param(
            account("A", package(timing="later")),
            "accounts[0].packages[0].timing: must be one of 'advance' or 'arrears', not \"later\"",
            id="an unknown timing",
        ),
        pytest.param(
            account("A", package(start_date="2026-02-30")),
            'accounts[0].packages[0].start_date: "2026-02-30" is not a date: '
            "February 2026 has 28 days",
            id="a date that does not exist",
        ),
        pytest.param(
            account("A", package(start_date="01/02/2026")),
            'accounts[0].packages[0].start_date: not a date (YYYY-MM-DD): "01/02/2026"',
            id="a date in another format",
        ),
        pytest.param(
            account("A", package(end_date="2025-12-31")),
            "accounts[0].packages[0].end_date: 2025-12-31 is before start_date 2026-01-01",
            id="an end date before the start date",
        ),
        pytest.param(
            account("A", package(colour="blue")),
            "accounts[0].packages[0].colour: unknown field",
            id="an unknown package field",
        ),
        pytest.param(
            account("A", vat_number="DE123"),
            "accounts[0].vat_number: unknown field",
            id="an unknown account field",
        ),
        pytest.param(
            {"id": "A", "currency": "EUR"},
            "accounts[0].name: required field is missing",
            id="a missing name",
        ),
        pytest.param(
            account("A", package(timing="arrears", next_bill_date="2026-01-01")),
            "accounts[0].packages[0].next_bill_date: "
            "an arrears package's first bill date is one period after its start date",
            id="an arrears package billed at its start",
        ),
    ],
)
def test_a_bad_field_is_reported_with_its_path(record, problem):
    assert problems(document(record)) == [problem]


def test_a_next_bill_date_off_the_schedule_is_reported_with_the_schedule():
    raw = document(account("A", package(start_date="2026-01-31", next_bill_date="2026-02-27")))
    [problem] = problems(raw)
    assert problem.startswith(
        "accounts[0].packages[0].next_bill_date: 2026-02-27 is not a bill date of a monthly "
        "schedule anchored at 2026-01-31"
    )
    assert "2026-01-31, 2026-02-28, 2026-03-31, ..." in problem


def test_duplicate_account_ids_are_reported_against_the_first():
    raw = document(account("A"), account("B"), account("A"), account(" B "))
    assert problems(raw) == [
        'accounts[2].id: duplicate of accounts[0].id: "A"',
        'accounts[3].id: duplicate of accounts[1].id: "B"',
    ]


def test_duplicate_package_ids_are_reported_within_their_account():
    raw = document(
        account("A", package("office"), package("phone"), package("office")),
        account("B", package("office")),  # the same package id on another account is fine
    )
    assert problems(raw) == [
        'accounts[0].packages[2].id: duplicate of accounts[0].packages[0].id: "office"'
    ]


# -- Whole-file problems -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"accounts": [', "not valid JSON: "),
        (b"", "not valid JSON: "),
        (b"\xff\xfe\x00", "not valid JSON: "),
        (b"[]", 'must be a JSON object with an "accounts" list'),
        (b'"accounts"', 'must be a JSON object with an "accounts" list'),
        (b"null", 'must be a JSON object with an "accounts" list'),
    ],
    ids=["truncated", "empty", "not utf-8", "a list", "a string", "null"],
)
def test_a_file_that_is_not_a_json_object_is_refused_whole(raw, problem):
    [reported] = problems(raw)
    assert reported.startswith(problem)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"accounts": {}}', ["accounts: must be a list"]),
        (b'{"accounts": null}', ["accounts: must be a list"]),
        (b'{"accounts": [], "acounts": []}', ["acounts: unknown field"]),
        (
            b'{"accounts": [42, null]}',
            [
                "accounts[0]: Input should be a valid dictionary or instance of AccountRecord: 42",
                "accounts[1]: Input should be a valid dictionary or instance of "
                "AccountRecord: null",
            ],
        ),
    ],
)
def test_a_malformed_top_level_is_reported(raw, expected):
    assert problems(raw) == expected


def test_every_problem_is_reported_in_one_pass_in_reading_order():
    raw = document(
        account("A", package("office"), package("phone", amount=9.5)),
        account("B", invoice_email="nobody", currency="XXX"),
        account("A", package("desk", amount="1.999"), package("desk")),
        account("C", package("desk", amount="12,00"), package("lamp", end_date="2025-01-01")),
        extra=True,
    )
    assert problems(raw) == [
        'accounts[0].packages[1].amount: must be a decimal string such as "1200.00", not 9.5',
        'accounts[1].currency: not an ISO 4217 currency code: "XXX"',
        'accounts[1].invoice_email: not an email address: "nobody"',
        'accounts[2].id: duplicate of accounts[0].id: "A"',
        'accounts[2].packages[0].amount: "1.999" has more decimals than EUR allows (2)',
        'accounts[2].packages[1].id: duplicate of accounts[2].packages[0].id: "desk"',
        'accounts[3].packages[0].amount: not a decimal: "12,00"',
        "accounts[3].packages[1].end_date: 2025-01-01 is before start_date 2026-01-01",
        "extra: unknown field",
    ]


def test_the_refusal_names_the_file_and_counts_the_problems():
    with pytest.raises(InvalidInput) as refused:
        parse_import(document(account("A", currency="XXX"), account("A")), "march.json")
    message = str(refused.value)
    assert message.startswith("march.json: refused, 2 problems, nothing written:")
    assert '  march.json: accounts[0].currency: not an ISO 4217 currency code: "XXX"' in message


# -- Awkward input is reported, never crashed on -------------------------------------------


def test_unknown_fields_named_like_numbers_are_reported_beside_other_problems():
    raw = json.dumps({"accounts": [], "1": 0, "x": 0}).encode()
    assert problems(raw) == ["1: unknown field", "x: unknown field"]


def test_a_numeric_unknown_field_inside_an_account_is_reported_beside_other_problems():
    record = account("A", **{"2": "two"})
    del record["name"]
    assert problems(document(record)) == [
        "accounts[0].2: unknown field",
        "accounts[0].name: required field is missing",
    ]


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        ("1e30", 'not a decimal: "1e30"'),
        (
            "123456789012345678901234567890.00",
            '"123456789012345678901234567890.00" is too large: billrun bills amounts, '
            "quantities and rates below 1000000000000 (10^12)",
        ),
    ],
)
def test_an_amount_too_large_to_bill_is_reported_not_crashed_on(amount, problem):
    assert problems(document(account("A", package(amount=amount)))) == [
        f"accounts[0].packages[0].amount: {problem}"
    ]


def test_a_bad_field_does_not_hide_the_duplicate_ids_and_dates_around_it():
    raw = document(
        account("A", invoice_email="nobody"),
        account("A", package("office", amount="1,00"), package("office", end_date="2025-01-01")),
        {"id": "B", "currency": "XXX", "packages": [package(amount="1.999"), "not a package"]},
    )
    assert problems(raw) == [
        'accounts[0].invoice_email: not an email address: "nobody"',
        'accounts[1].id: duplicate of accounts[0].id: "A"',
        'accounts[1].packages[0].amount: not a decimal: "1,00"',
        "accounts[1].packages[1].end_date: 2025-01-01 is before start_date 2026-01-01",
        'accounts[1].packages[1].id: duplicate of accounts[1].packages[0].id: "office"',
        'accounts[2].currency: not an ISO 4217 currency code: "XXX"',
        "accounts[2].name: required field is missing",
        "accounts[2].packages[1]: Input should be a valid dictionary or instance of "
        'PackageRecord: "not a package"',
    ]


# -- Paths and the schema ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "path"),
    [
        ((), ""),
        (("accounts",), "accounts"),
        (("accounts", 3), "accounts[3]"),
        (("accounts", 3, "packages", 0, "amount"), "accounts[3].packages[0].amount"),
    ],
)
def test_a_location_is_written_as_a_path(location, path):
    assert format_path(location) == path


def test_the_json_schema_asks_for_amounts_as_strings():
    schema = json_schema()
    assert schema["title"] == "billrun import file"
    assert schema["$defs"]["PackageRecord"]["properties"]["amount"]["type"] == "string"
    assert "EUR" in schema["$defs"]["AccountRecord"]["properties"]["currency"]["enum"]


# -- Tax rates, package categories, anchor dates, charges and usage -----------------------


def charge(charge_id: str = "setup", **fields: Any) -> dict[str, Any]:
    return {
        "id": charge_id,
        "description": charge_id.title(),
        "amount": "50.00",
        "date": "2026-01-10",
        **fields,
    }


def usage(usage_id: str = "u-1", package_id: str = "office", **fields: Any) -> dict[str, Any]:
    return {
        "id": usage_id,
        "package_id": package_id,
        "quantity": "10",
        "occurred_on": "2026-01-20",
        **fields,
    }


def test_the_new_billing_fields_parse_with_their_defaults():
    raw = document(
        account(
            "ACME-001",
            package("office"),
            package(
                "calls",
                amount="5.00",
                start_date="2026-01-15",
                anchor_date="2026-01-01",
                category="telephony",
                tax_rate="7.5",
                usage_rate="0.015",
            ),
            tax_rate="20",
            charges=[
                charge("setup"),
                charge("goodwill", amount="-20.00", category="credits", tax_rate="0"),
            ],
            usage=[
                usage("u-1", "calls"),
                usage("u-2", "office", unit_price="1.25", description="Printing", quantity="2.5"),
            ],
        ),
        account("B"),
    )
    acme, plain = parse_import(raw, "accounts.json").accounts
    office, calls = acme.packages
    assert acme.tax_rate == Decimal(20)
    assert (office.anchor_date, office.anchor, office.category) == (
        None,
        date(2026, 1, 1),
        "services",
    )
    assert (office.tax_rate, office.usage_rate) == (None, None)
    assert (calls.anchor_date, calls.anchor, calls.start_date) == (
        date(2026, 1, 1),
        date(2026, 1, 1),
        date(2026, 1, 15),
    )
    assert (calls.category, calls.tax_rate, calls.usage_rate) == (
        "telephony",
        Decimal("7.5"),
        Decimal("0.015"),
    )
    setup, goodwill = acme.charges
    assert (setup.amount, setup.date, setup.category, setup.tax_rate) == (
        Decimal("50.00"),
        date(2026, 1, 10),
        "charges",
        None,
    )
    assert (goodwill.amount, goodwill.category, goodwill.tax_rate) == (
        Decimal("-20.00"),
        "credits",
        Decimal(0),
    )
    first, second = acme.usage
    assert (first.package_id, first.quantity, first.unit_price, first.description) == (
        "calls",
        Decimal(10),
        None,
        None,
    )
    assert (second.quantity, second.unit_price, second.description) == (
        Decimal("2.5"),
        Decimal("1.25"),
        "Printing",
    )
    assert (plain.tax_rate, plain.charges, plain.usage) == (Decimal(0), [], [])


@pytest.mark.parametrize(
    ("anchor", "start", "frequency"),
    [
        ("2026-01-15", "2026-01-15", "monthly"),  # the start itself
        ("2026-01-01", "2026-01-31", "monthly"),  # next bill date 2026-02-01
        ("2026-01-31", "2026-02-27", "monthly"),  # next bill date clamped to 2026-02-28
        ("2025-11-01", "2026-01-31", "quarterly"),  # next bill date 2026-02-01
        ("2025-03-01", "2026-02-28", "yearly"),  # next bill date 2026-03-01
    ],
)
def test_an_anchor_less_than_one_period_before_the_start_is_valid(anchor, start, frequency):
    record = package(anchor_date=anchor, start_date=start, frequency=frequency)
    [parsed] = parse_import(document(account("A", record)), "accounts.json").accounts
    assert parsed.packages[0].anchor == date.fromisoformat(anchor)


def test_a_next_bill_date_is_on_the_anchor_s_schedule():
    record = package(start_date="2026-01-15", anchor_date="2026-01-01", next_bill_date="2026-03-01")
    parse_import(document(account("A", record)), "accounts.json")
    off = package(start_date="2026-01-15", anchor_date="2026-01-01", next_bill_date="2026-02-15")
    [problem] = problems(document(account("A", off)))
    assert problem.startswith(
        "accounts[0].packages[0].next_bill_date: 2026-02-15 is not a bill date of a monthly "
        "schedule anchored at 2026-01-01"
    )


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        pytest.param(
            account("A", tax_rate="120"),
            'accounts[0].tax_rate: "120" is not a percentage from 0 to 100',
            id="an account tax rate above 100",
        ),
        pytest.param(
            account("A", tax_rate="-0.5"),
            'accounts[0].tax_rate: "-0.5" is not a percentage from 0 to 100',
            id="a negative account tax rate",
        ),
        pytest.param(
            account("A", tax_rate=20),
            'accounts[0].tax_rate: must be a decimal string such as "1200.00", not 20',
            id="a JSON number tax rate",
        ),
        pytest.param(
            account("A", tax_rate="20%"),
            'accounts[0].tax_rate: not a decimal: "20%"',
            id="a tax rate with a percent sign",
        ),
        pytest.param(
            account("A", package(tax_rate="100.01")),
            'accounts[0].packages[0].tax_rate: "100.01" is not a percentage from 0 to 100',
            id="a package tax rate above 100",
        ),
        pytest.param(
            account("A", package(usage_rate="-0.01")),
            'accounts[0].packages[0].usage_rate: "-0.01" is negative',
            id="a negative usage rate",
        ),
        pytest.param(
            account("A", package(usage_rate=0.05)),
            'accounts[0].packages[0].usage_rate: must be a decimal string such as "1200.00", '
            "not 0.05",
            id="a JSON float usage rate",
        ),
        pytest.param(
            account("A", package(category=" ")),
            'accounts[0].packages[0].category: must be a non-empty string, not " "',
            id="a blank package category",
        ),
        pytest.param(
            account("A", package(anchor_date="2026-01-02")),
            "accounts[0].packages[0].anchor_date: 2026-01-02 is after start_date 2026-01-01",
            id="an anchor after the start",
        ),
        pytest.param(
            account("A", package(start_date="2026-01-15", anchor_date="2025-12-15")),
            "accounts[0].packages[0].anchor_date: 2025-12-15 is a whole monthly period or more "
            "before start_date 2026-01-15 (the next bill date after it, 2026-01-15, is not "
            "after the start); an anchor must be less than one period before the start",
            id="an anchor a whole period before the start",
        ),
        pytest.param(
            account("A", package(start_date="2026-02-28", anchor_date="2026-01-31")),
            "accounts[0].packages[0].anchor_date: 2026-01-31 is a whole monthly period or more "
            "before start_date 2026-02-28 (the next bill date after it, 2026-02-28, is not "
            "after the start); an anchor must be less than one period before the start",
            id="an anchor whose clamped next bill date is the start",
        ),
        pytest.param(
            account(
                "A",
                package(start_date="2026-01-15", anchor_date="2025-10-01", frequency="quarterly"),
            ),
            "accounts[0].packages[0].anchor_date: 2025-10-01 is a whole quarterly period or "
            "more before start_date 2026-01-15 (the next bill date after it, 2026-01-01, is "
            "not after the start); an anchor must be less than one period before the start",
            id="a quarterly anchor a whole quarter before the start",
        ),
        pytest.param(
            account(
                "A",
                package(
                    start_date="2026-01-15",
                    anchor_date="2026-01-01",
                    timing="arrears",
                    next_bill_date="2026-01-01",
                ),
            ),
            "accounts[0].packages[0].next_bill_date: "
            "an arrears package's first bill date is one period after its anchor date",
            id="an arrears package billed at its anchor",
        ),
        pytest.param(
            account("A", package(anchor_date="1 Jan 2026")),
            'accounts[0].packages[0].anchor_date: not a date (YYYY-MM-DD): "1 Jan 2026"',
            id="an anchor that is not a date",
        ),
        pytest.param(
            account("A", charges=[charge(amount="10.001")]),
            'accounts[0].charges[0].amount: "10.001" has more decimals than EUR allows (2)',
            id="a charge with more decimals than the currency allows",
        ),
        pytest.param(
            account("A", charges=[charge(amount="-0.5")], currency="JPY"),
            'accounts[0].charges[0].amount: "-0.5" has more decimals than JPY allows (0)',
            id="a yen credit with a fraction",
        ),
        pytest.param(
            account("A", charges=[charge(amount="1e30")]),
            'accounts[0].charges[0].amount: not a decimal: "1e30"',
            id="a charge too large to bill",
        ),
        pytest.param(
            account("A", charges=[charge(amount=50)]),
            'accounts[0].charges[0].amount: must be a decimal string such as "1200.00", not 50',
            id="a JSON number charge amount",
        ),
        pytest.param(
            account("A", charges=[charge(tax_rate="101")]),
            'accounts[0].charges[0].tax_rate: "101" is not a percentage from 0 to 100',
            id="a charge tax rate above 100",
        ),
        pytest.param(
            account("A", charges=[charge(category="")]),
            'accounts[0].charges[0].category: must be a non-empty string, not ""',
            id="an empty charge category",
        ),
        pytest.param(
            account("A", charges=[{k: v for k, v in charge().items() if k != "date"}]),
            "accounts[0].charges[0].date: required field is missing",
            id="a charge without a date",
        ),
        pytest.param(
            account("A", charges=[charge(charge_date="2026-01-10")]),
            "accounts[0].charges[0].charge_date: unknown field",
            id="the domain's field name instead of the file's",
        ),
        pytest.param(
            account("A", package(), usage=[usage(quantity=10)]),
            'accounts[0].usage[0].quantity: must be a decimal string such as "1200.00", not 10',
            id="a JSON number quantity",
        ),
        pytest.param(
            account("A", package(), usage=[usage(unit_price="1,25")]),
            'accounts[0].usage[0].unit_price: not a decimal: "1,25"',
            id="a comma unit price",
        ),
        pytest.param(
            account("A", package(), usage=[usage(occurred_on="2026-13-01", unit_price="1")]),
            'accounts[0].usage[0].occurred_on: "2026-13-01" is not a date: '
            "there is no month 13 (months are 01..12)",
            id="a usage date that does not exist",
        ),
        pytest.param(
            account("A", package(), usage=[usage(unit_price="1", description="")]),
            'accounts[0].usage[0].description: must be a non-empty string, not ""',
            id="an empty usage description",
        ),
        pytest.param(
            account("A", package(), usage=[usage()]),
            'accounts[0].usage[0].unit_price: required: package "office" has no usage_rate',
            id="usage without a price of a package without a usage rate",
        ),
        pytest.param(
            account("A", package(usage_rate="0.10"), usage=[usage(occurred_on="2025-12-31")]),
            'accounts[0].usage[0].occurred_on: 2025-12-31 is before package "office"\'s '
            "start_date 2026-01-01",
            id="usage before its package starts",
        ),
        pytest.param(
            account(
                "A",
                package(usage_rate="0.10", end_date="2026-01-31"),
                usage=[usage(occurred_on="2026-02-01")],
            ),
            'accounts[0].usage[0].occurred_on: 2026-02-01 is after package "office"\'s '
            "end_date 2026-01-31",
            id="usage after its package ends",
        ),
        pytest.param(
            account("A", charges={"id": "setup"}),
            'accounts[0].charges: Input should be a valid list: {"id": "setup"}',
            id="charges that are not a list",
        ),
    ],
)
def test_a_bad_billing_field_is_reported_with_its_path(record, problem):
    assert problems(document(record)) == [problem]


def test_usage_with_its_own_price_needs_no_usage_rate_and_a_credit_is_a_charge():
    raw = document(
        account(
            "A",
            package(),
            usage=[usage(unit_price="0.25"), usage("u-2", quantity="-2", unit_price="0.25")],
            charges=[charge(amount="-20.00")],
        )
    )
    [parsed] = parse_import(raw, "accounts.json").accounts
    assert [u.quantity for u in parsed.usage] == [Decimal(10), Decimal(-2)]
    assert parsed.charges[0].amount == Decimal("-20.00")


def test_usage_naming_a_package_not_in_the_file_is_left_to_the_import():
    """The package may have been imported before: only the store can tell."""
    raw = document(account("A", usage=[usage(package_id="imported-last-month")]))
    [parsed] = parse_import(raw, "accounts.json").accounts
    assert parsed.usage[0].package_id == "imported-last-month"


def test_usage_is_checked_against_the_first_package_of_its_id():
    raw = document(
        account(
            "A",
            package("office", usage_rate="0.10"),
            package("office", start_date="2026-02-01"),
            usage=[usage()],
        )
    )
    assert problems(raw) == [
        'accounts[0].packages[1].id: duplicate of accounts[0].packages[0].id: "office"'
    ]


def test_duplicate_charge_and_usage_ids_are_reported_within_their_account():
    raw = document(
        account(
            "A",
            package(usage_rate="0.10"),
            charges=[charge("setup"), charge("fee"), charge(" setup ", amount="10.00")],
            usage=[usage("u-1"), usage("u-2"), usage("u-1", quantity="3")],
        ),
        # The same ids on another account, and a charge and a usage record sharing
        # an id, are fine: each kind is unique within its account.
        account("B", package(usage_rate="0.10"), charges=[charge("u-1")], usage=[usage("u-1")]),
    )
    assert problems(raw) == [
        'accounts[0].charges[2].id: duplicate of accounts[0].charges[0].id: "setup"',
        'accounts[0].usage[2].id: duplicate of accounts[0].usage[0].id: "u-1"',
    ]


def test_a_bad_field_does_not_hide_the_charge_and_usage_problems_around_it():
    raw = document(
        account(
            "A",
            package(end_date="2026-01-31", usage_rate="0.10"),
            tax_rate="150",
            charges=[charge("fee", amount="1.999"), charge("fee", tax_rate="x")],
            usage=[usage(occurred_on="2026-03-01"), usage(quantity="lots")],
        ),
    )
    assert problems(raw) == [
        'accounts[0].charges[0].amount: "1.999" has more decimals than EUR allows (2)',
        'accounts[0].charges[1].id: duplicate of accounts[0].charges[0].id: "fee"',
        'accounts[0].charges[1].tax_rate: not a decimal: "x"',
        'accounts[0].tax_rate: "150" is not a percentage from 0 to 100',
        'accounts[0].usage[0].occurred_on: 2026-03-01 is after package "office"\'s '
        "end_date 2026-01-31",
        'accounts[0].usage[1].id: duplicate of accounts[0].usage[0].id: "u-1"',
        'accounts[0].usage[1].quantity: not a decimal: "lots"',
    ]


def test_the_json_schema_asks_for_every_decimal_as_a_string():
    schema = json_schema()
    defs = schema["$defs"]
    assert defs["AccountRecord"]["properties"]["tax_rate"] == {
        "default": "0",
        "description": defs["AccountRecord"]["properties"]["tax_rate"]["description"],
        "title": "Tax Rate",
        "type": "string",
    }
    for record, field in [
        ("PackageRecord", "tax_rate"),
        ("PackageRecord", "usage_rate"),
        ("ChargeRecord", "tax_rate"),
        ("UsageRecord", "unit_price"),
    ]:
        assert defs[record]["properties"][field]["anyOf"] == [
            {"type": "string"},
            {"type": "null"},
        ]
    for record, field in [("ChargeRecord", "amount"), ("UsageRecord", "quantity")]:
        assert defs[record]["properties"][field]["type"] == "string"
    # No decimal is offered as a JSON number anywhere.
    assert '"number"' not in json.dumps(schema)
    assert defs["PackageRecord"]["properties"]["category"]["default"] == "services"
    assert defs["ChargeRecord"]["properties"]["category"]["default"] == "charges"
    assert set(defs["ChargeRecord"]["required"]) == {"id", "description", "amount", "date"}
    assert set(defs["UsageRecord"]["required"]) == {"id", "package_id", "quantity", "occurred_on"}


def test_an_accounts_buyer_details_are_imported_and_left_out_ones_kept() -> None:
    from application.billing.import_document import AccountRecord
    from application.billing.importing import buyer_details
    from domain.billing.buyer import BuyerDetails

    record = AccountRecord.model_validate(
        {
            "id": "A",
            "name": "A",
            "currency": "EUR",
            "address": {"street": "Rue 1", "city": "Liège", "postal_code": "4000", "country": "BE"},
            "vat_id": "BE0477472701",
            "electronic_address": {"scheme": "0208", "id": "0477472701"},
        }
    )
    details = buyer_details(BuyerDetails(), record)
    assert details == BuyerDetails(
        street="Rue 1", city="Liège", postal_code="4000", country_code="BE",
        vat_id="BE0477472701", endpoint_scheme="0208", endpoint_id="0477472701",
    )  # fmt: skip
    renamed = AccountRecord.model_validate({"id": "A", "name": "B", "currency": "EUR"})
    assert buyer_details(details, renamed) == details  # left out: as it is
    cleared = AccountRecord.model_validate(
        {"id": "A", "name": "B", "currency": "EUR", "electronic_address": None}
    )
    assert buyer_details(details, cleared).endpoint_id is None


def test_incoherent_buyer_details_are_refused_with_the_account() -> None:
    from datetime import UTC, datetime

    from domain.billing.account import Account
    from domain.billing.buyer import BuyerDetails
    from domain.shared.errors import AccountError

    at = datetime(2026, 1, 1, tzinfo=UTC)
    account = Account.open("A", "A", "EUR", None, "default", at)
    with pytest.raises(AccountError, match="account A: country 'Belgium' is not an ISO 3166-1"):
        account.set_buyer_details(BuyerDetails(country_code="Belgium"), at)
    with pytest.raises(AccountError, match="needs both its scheme and its id"):
        account.set_buyer_details(BuyerDetails(endpoint_id="0477472701"), at)
