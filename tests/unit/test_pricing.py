"""Pro rata periods and per-line tax: the formulas, case by case, and their sums."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.billing.account import Account
from domain.billing.pricing import overlap, prorated, tax_on
from domain.billing.terms import ChargeTerms, PackageTerms
from domain.invoicing.invoice import Invoice
from domain.shared.errors import AccountError, InvalidPeriod
from domain.shared.periods import Frequency, Period, Timing

AT = datetime(2026, 1, 1, tzinfo=UTC)


def d(iso: str) -> date:
    return date.fromisoformat(iso)


def p(start: str, end: str) -> Period:
    return Period(d(start), d(end))


# -- The formula: price x days used / days in the service period, rounded once ---


@pytest.mark.parametrize(
    ("price", "used", "period", "currency", "expected"),
    [
        pytest.param("100.00", p("2026-01-01", "2026-01-31"), p("2026-01-01", "2026-01-31"),
                     "EUR", "100.00", id="a whole period is the price, no division"),
        pytest.param("100.00", p("2026-01-15", "2026-01-31"), p("2026-01-01", "2026-01-31"),
                     "EUR", "54.84", id="17 of 31 days: 54.8387 rounds up"),
        pytest.param("100.00", p("2026-02-15", "2026-02-28"), p("2026-02-01", "2026-02-28"),
                     "EUR", "50.00", id="14 of 28 days in February"),
        pytest.param("100.00", p("2028-02-15", "2028-02-29"), p("2028-02-01", "2028-02-29"),
                     "EUR", "51.72", id="leap year: 15 of 29 days"),
        pytest.param("100.00", p("2026-04-01", "2026-04-01"), p("2026-04-01", "2026-04-30"),
                     "EUR", "3.33", id="one day of a 30-day month"),
        pytest.param("100.00", p("2026-03-31", "2026-03-31"), p("2026-03-01", "2026-03-31"),
                     "EUR", "3.23", id="the 31st of a 31-day month is one day in 31"),
        pytest.param("300.00", p("2026-02-15", "2026-03-31"), p("2026-01-01", "2026-03-31"),
                     "EUR", "150.00", id="quarter of 90 days: 45 days"),
        pytest.param("300.00", p("2028-02-15", "2028-03-31"), p("2028-01-01", "2028-03-31"),
                     "EUR", "151.65", id="leap quarter of 91 days: 46 days, 151.648"),
        pytest.param("1200.00", p("2028-07-01", "2028-12-31"), p("2028-01-01", "2028-12-31"),
                     "EUR", "603.28", id="leap year, second half: 184 of 366 days"),
        pytest.param("10000", p("2026-01-16", "2026-01-31"), p("2026-01-01", "2026-01-31"),
                     "JPY", "5161", id="JPY has no minor unit: 5161.29 rounds to 5161"),
        pytest.param("10.000", p("2026-01-16", "2026-01-31"), p("2026-01-01", "2026-01-31"),
                     "KWD", "5.161", id="KWD has three decimals"),
        pytest.param("0.10", p("2026-01-01", "2026-01-05"), p("2026-01-01", "2026-01-31"),
                     "EUR", "0.02", id="0.0161 rounds half up to 0.02"),
        pytest.param("-31.00", p("2026-01-01", "2026-01-15"), p("2026-01-01", "2026-01-31"),
                     "EUR", "-15.00", id="a negative price prorates symmetrically"),
    ],
)  # fmt: skip
def test_prorated(price: str, used: Period, period: Period, currency: str, expected: str) -> None:
    result = prorated(Decimal(price), used, period, currency)
    assert result == Decimal(expected)
    assert str(result) == expected


def test_days_outside_the_period_are_refused() -> None:
    with pytest.raises(InvalidPeriod):
        prorated(Decimal("10.00"), p("2026-01-31", "2026-02-01"), p("2026-01-01", "2026-01-31"),
                 "EUR")  # fmt: skip


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-01-15", None, p("2026-01-15", "2026-01-31")),
        ("2025-12-01", "2026-01-10", p("2026-01-01", "2026-01-10")),
        ("2026-02-01", None, None),
        ("2025-01-01", "2025-12-31", None),
    ],
)
def test_overlap(start: str, end: str | None, expected: Period | None) -> None:
    assert overlap(p("2026-01-01", "2026-01-31"), d(start), None if end is None else d(end)) == (
        expected
    )


# -- Packages that start or end inside a period ----------------------------------


def account(tax_rate: str = "0") -> Account:
    return Account.open("ACME", "Acme", "EUR", None, "default", AT, tax_rate=Decimal(tax_rate))


def package(**changes: object) -> PackageTerms:
    values: dict[str, object] = {
        "package_id": "office",
        "description": "Office",
        "amount": Decimal("310.00"),
        "frequency": Frequency.MONTHLY,
        "timing": Timing.ADVANCE,
        "start_date": d("2026-01-15"),
    }
    values.update(changes)
    return PackageTerms.model_validate(values)


def billed(acct: Account, start: str, end: str) -> list[tuple[str, str, str, str]]:
    lines = acct.bill("run", p(start, end), d(end), AT)
    return [
        (str(line.service_period_start), str(line.service_period_end), str(line.amount), line.rule)
        for line in lines
    ]


@pytest.mark.parametrize(
    ("terms", "window", "expected"),
    [
        pytest.param(
            package(anchor_date=d("2026-01-01")),
            ("2026-01-01", "2026-02-28"),
            [
                ("2026-01-15", "2026-01-31", "170.00", "recurring:monthly:advance:prorated:17/31"),
                ("2026-02-01", "2026-02-28", "310.00", "recurring:monthly:advance"),
            ],
            id="started on the 15th, aligned to the 1st: first month 17/31",
        ),
        pytest.param(
            package(anchor_date=d("2026-01-01"), timing=Timing.ARREARS),
            ("2026-01-01", "2026-03-31"),
            [
                ("2026-01-15", "2026-01-31", "170.00", "recurring:monthly:arrears:prorated:17/31"),
                ("2026-02-01", "2026-02-28", "310.00", "recurring:monthly:arrears"),
            ],
            id="arrears: the partial month is billed on the next 1st",
        ),
        pytest.param(
            package(start_date=d("2026-01-01"), end_date=d("2026-02-14")),
            ("2026-01-01", "2026-06-30"),
            [
                ("2026-01-01", "2026-01-31", "310.00", "recurring:monthly:advance"),
                ("2026-02-01", "2026-02-14", "155.00", "recurring:monthly:advance:prorated:14/28"),
            ],
            id="ended on 14 February: 14 of 28 days, then nothing",
        ),
        pytest.param(
            package(start_date=d("2028-01-01"), end_date=d("2028-02-14")),
            ("2028-01-01", "2028-06-30"),
            [
                ("2028-01-01", "2028-01-31", "310.00", "recurring:monthly:advance"),
                ("2028-02-01", "2028-02-14", "149.66", "recurring:monthly:advance:prorated:14/29"),
            ],
            id="leap February: 14 of 29 days",
        ),
        pytest.param(
            package(
                start_date=d("2026-02-01"),
                anchor_date=d("2026-01-01"),
                frequency=Frequency.QUARTERLY,
                amount=Decimal("900.00"),
            ),
            ("2026-01-01", "2026-03-31"),
            [("2026-02-01", "2026-03-31", "590.00", "recurring:quarterly:advance:prorated:59/90")],
            id="quarterly aligned to 1 January, started 1 February: 59 of 90 days",
        ),
        pytest.param(
            package(
                start_date=d("2026-01-10"), anchor_date=d("2026-01-01"), end_date=d("2026-01-20")
            ),
            ("2026-01-01", "2026-03-31"),
            [("2026-01-10", "2026-01-20", "110.00", "recurring:monthly:advance:prorated:11/31")],
            id="starts and ends inside one period",
        ),
    ],
)
def test_partial_periods(
    terms: PackageTerms, window: tuple[str, str], expected: list[tuple[str, str, str, str]]
) -> None:
    acct = account()
    acct.subscribe(terms, None, AT)
    assert billed(acct, *window) == expected


@pytest.mark.parametrize(
    "anchor",
    [d("2026-01-16"), d("2025-12-14")],
    ids=["after the start", "a whole period or more before the start"],
)
def test_an_anchor_must_fall_within_the_first_period(anchor: date) -> None:
    with pytest.raises(AccountError, match="anchor date"):
        account().subscribe(package(anchor_date=anchor), None, AT)


# -- Tax: per line, rounded per line; the invoice's totals are sums of lines ------


@pytest.mark.parametrize(
    ("amount", "rate", "currency", "expected"),
    [
        ("100.00", "20", "EUR", "20.00"),
        ("0.05", "20", "EUR", "0.01"),  # 0.010
        ("0.02", "20", "EUR", "0.00"),  # 0.004
        ("0.03", "15", "EUR", "0.00"),  # 0.0045: the third decimal decides, not the fourth
        ("10.05", "5.5", "EUR", "0.55"),  # 0.55275
        ("-10.05", "5.5", "EUR", "-0.55"),  # symmetric for credits
        ("1999", "10", "JPY", "200"),  # 199.9
        ("1.005", "10", "KWD", "0.101"),  # 0.1005 rounds half up
        ("100.00", "0", "EUR", "0.00"),
    ],
)
def test_tax_on_one_line(amount: str, rate: str, currency: str, expected: str) -> None:
    assert str(tax_on(Decimal(amount), Decimal(rate), currency)) == expected


def test_lines_take_the_package_rate_else_the_account_rate() -> None:
    acct = account(tax_rate="20")
    acct.subscribe(package(start_date=d("2026-01-01")), None, AT)
    acct.subscribe(
        package(package_id="books", start_date=d("2026-01-01"), tax_rate=Decimal("5.5")), None, AT
    )
    acct.add_charge(
        ChargeTerms(
            charge_id="c1",
            description="Setup",
            amount=Decimal("49.99"),
            charge_date=d("2026-01-10"),
        ),
        AT,
    )
    lines = acct.bill("run", p("2026-01-01", "2026-01-31"), d("2026-01-31"), AT)
    assert [(line.source, str(line.tax_rate), str(line.tax)) for line in lines] == [
        ("package:office", "20", "62.00"),
        ("package:books", "5.5", "17.05"),
        ("charge:c1", "20", "10.00"),  # 9.998
    ]


@pytest.mark.parametrize("rate", ["-1", "100.01", "NaN"])
def test_a_tax_rate_outside_0_to_100_is_refused(rate: str) -> None:
    with pytest.raises(AccountError, match="tax rate"):
        account(tax_rate=rate)


amounts = st.decimals(
    min_value=Decimal("-10000"), max_value=Decimal("10000"), places=2, allow_nan=False
)
rates = st.sampled_from([Decimal(r) for r in ("0", "5.5", "7", "10", "19", "20", "21", "25")])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(amounts, rates), min_size=1, max_size=20))
def test_invoice_totals_are_the_exact_sums_of_their_lines(
    items: list[tuple[Decimal, Decimal]],
) -> None:
    acct = account()
    for i, (amount, rate) in enumerate(items):
        acct.add_charge(
            ChargeTerms(
                charge_id=f"c{i}",
                description=f"Item {i}",
                amount=amount,
                charge_date=d("2026-01-05"),
                tax_rate=rate,
            ),
            AT,
        )
    lines = acct.bill("run", p("2026-01-01", "2026-01-31"), d("2026-01-31"), AT)
    invoice = Invoice.open("run", "ACME", "EUR", d("2026-01-31"), AT)
    for line in lines:
        invoice.add_line(line, AT)
    invoice.close(1, AT)
    assert invoice.subtotal == sum(line.amount for line in lines)
    # Each rate's taxable amount is taxed and rounded once (BR-CO-17).
    by_rate: dict[Decimal, Decimal] = {}
    for line in lines:
        by_rate[line.tax_rate] = by_rate.get(line.tax_rate, Decimal(0)) + line.amount
    assert invoice.tax == sum(tax_on(net, rate, "EUR") for rate, net in by_rate.items())
    assert invoice.total == invoice.subtotal + invoice.tax
    for line in lines:
        assert line.tax == tax_on(line.amount, line.tax_rate, "EUR")
        assert line.tax.as_tuple().exponent == -2
