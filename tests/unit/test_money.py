"""Money: minor units, the one rounding rule, and exact arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.shared.errors import CurrencyMismatch, UnknownCurrency
from domain.shared.money import (
    MINOR_UNITS,
    Money,
    is_currency,
    minor_units,
    quantum,
    round_to_currency,
)

D = Decimal


def exponent(amount: Decimal) -> int:
    exp = amount.as_tuple().exponent
    assert isinstance(exp, int)
    return exp


# -- Minor units ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "places", "smallest"),
    [
        ("JPY", 0, "1"),
        ("EUR", 2, "0.01"),
        ("USD", 2, "0.01"),
        ("KWD", 3, "0.001"),
        ("BHD", 3, "0.001"),
        ("CLF", 4, "0.0001"),
    ],
)
def test_each_currency_has_its_iso_4217_minor_unit(currency, places, smallest):
    assert is_currency(currency)
    assert minor_units(currency) == places
    assert quantum(currency) == D(smallest)
    assert exponent(quantum(currency)) == -places


@pytest.mark.parametrize("code", ["XXX", "XAU", "XDR", "eur", "EURO", "", "€"])
def test_an_unknown_currency_is_refused(code):
    assert not is_currency(code)
    with pytest.raises(UnknownCurrency, match="unknown ISO 4217 currency"):
        minor_units(code)
    with pytest.raises(UnknownCurrency):
        round_to_currency(D("1.00"), code)
    with pytest.raises(UnknownCurrency):
        Money(D("1.00"), code)


# -- The one rounding rule: HALF_UP at the minor unit --------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        # exact amounts keep their value and gain the currency's exponent
        ("10", "EUR", "10.00"),
        ("10.1", "EUR", "10.10"),
        ("0", "EUR", "0.00"),
        ("0", "JPY", "0"),
        ("0", "KWD", "0.000"),
        ("7", "CLF", "7.0000"),
        # .5 at the minor unit rounds up (away from zero), never to even
        ("0.005", "EUR", "0.01"),
        ("0.015", "EUR", "0.02"),
        ("0.025", "EUR", "0.03"),
        ("2.675", "EUR", "2.68"),
        ("1.0049999", "EUR", "1.00"),
        ("1.0050000", "EUR", "1.01"),
        ("0.5", "JPY", "1"),
        ("1.5", "JPY", "2"),
        ("2.5", "JPY", "3"),
        ("2.4999", "JPY", "2"),
        ("1.2345", "KWD", "1.235"),
        ("1.2344", "KWD", "1.234"),
        ("0.0005", "BHD", "0.001"),
        ("3.14155", "CLF", "3.1416"),
        ("3.14154", "CLF", "3.1415"),
        # negatives are symmetric: the tie goes away from zero too
        ("-0.005", "EUR", "-0.01"),
        ("-0.015", "EUR", "-0.02"),
        ("-2.675", "EUR", "-2.68"),
        ("-1.0049", "EUR", "-1.00"),
        ("-0.5", "JPY", "-1"),
        ("-2.5", "JPY", "-3"),
        ("-1.2345", "KWD", "-1.235"),
        ("-0.00005", "CLF", "-0.0001"),
        # large amounts are rounded exactly, no float on the way
        ("123456789012.345", "EUR", "123456789012.35"),
        ("999999999999.995", "EUR", "1000000000000.00"),
    ],
)
def test_amounts_round_half_up_at_the_currencys_minor_unit(amount, currency, rounded):
    result = round_to_currency(D(amount), currency)
    assert result == D(rounded)
    assert exponent(result) == -minor_units(currency)


@pytest.mark.parametrize("amount", [0.1, 1.5, 10, 1, True, "1.00", None])
def test_only_decimals_are_rounded(amount):
    with pytest.raises(TypeError, match="must be Decimal"):
        round_to_currency(amount, "EUR")


@pytest.mark.parametrize("amount", [0.1, 12.5])
def test_money_refuses_a_float(amount):
    with pytest.raises(TypeError):
        Money(amount, "EUR")


def test_an_amount_too_large_to_hold_at_the_minor_unit_is_refused_not_truncated():
    with pytest.raises(ValueError, match="cannot round"):
        round_to_currency(D("1e30"), "EUR")


# -- Money ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "held"),
    [
        ("12", "EUR", "12.00 EUR"),
        ("12.345", "EUR", "12.35 EUR"),
        ("1234.5", "JPY", "1235 JPY"),
        ("0.1", "KWD", "0.100 KWD"),
    ],
)
def test_money_is_held_at_the_currencys_minor_unit(amount, currency, held):
    assert str(Money(D(amount), currency)) == held


def test_money_adds_and_subtracts_in_one_currency():
    a = Money(D("10.10"), "EUR")
    b = Money(D("0.95"), "EUR")
    assert a + b == Money(D("11.05"), "EUR")
    assert a - b == Money(D("9.15"), "EUR")
    assert -a == Money(D("-10.10"), "EUR")
    assert a - a == Money.zero("EUR")
    assert str(Money.zero("EUR")) == "0.00 EUR"


def test_multiplying_money_rounds_the_product_once():
    assert Money(D("10.00"), "EUR").times(D("0.3333")) == Money(D("3.33"), "EUR")
    assert Money(D("0.01"), "EUR").times(D("0.5")) == Money(D("0.01"), "EUR")
    assert Money(D("100"), "JPY").times(D("1.005")) == Money(D("101"), "JPY")


@pytest.mark.parametrize(
    "operation",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: b + a,
        lambda a, b: b - a,
    ],
    ids=["add", "subtract", "add reversed", "subtract reversed"],
)
def test_money_arithmetic_refuses_to_mix_currencies(operation):
    with pytest.raises(CurrencyMismatch, match=r"EUR and USD|USD and EUR"):
        operation(Money(D("1.00"), "EUR"), Money(D("1.00"), "USD"))


def test_money_is_immutable():
    money = Money(D("1.00"), "EUR")
    with pytest.raises(AttributeError):
        money.amount = D("2.00")  # type: ignore[misc]


# -- Properties ----------------------------------------------------------------

currencies = st.sampled_from(sorted(MINOR_UNITS))
amounts = st.decimals(
    min_value=D("-1000000000000"),
    max_value=D("1000000000000"),
    allow_nan=False,
    allow_infinity=False,
    places=6,
)
moderate = settings(max_examples=200, deadline=None)


@moderate
@given(amount=amounts, currency=currencies)
def test_rounding_is_idempotent(amount, currency):
    once = round_to_currency(amount, currency)
    twice = round_to_currency(once, currency)
    assert twice == once
    assert exponent(twice) == exponent(once) == -minor_units(currency)


@moderate
@given(amount=amounts, currency=currencies)
def test_rounding_moves_an_amount_by_at_most_half_a_minor_unit(amount, currency):
    rounded = round_to_currency(amount, currency)
    assert abs(rounded - amount) <= quantum(currency) / 2


@moderate
@given(values=st.lists(amounts, max_size=30), currency=currencies)
def test_the_sum_of_rounded_amounts_stays_at_the_minor_unit(values, currency):
    total = sum((round_to_currency(v, currency) for v in values), round_to_currency(D(0), currency))
    assert exponent(total) == -minor_units(currency)
    assert round_to_currency(total, currency) == total


def money_in(currency: str) -> st.SearchStrategy[Money]:
    return amounts.map(lambda amount: Money(amount, currency))


@moderate
@given(data=st.data(), currency=currencies)
def test_money_addition_is_exact_commutative_and_associative(data, currency):
    a, b, c = (data.draw(money_in(currency)) for _ in range(3))
    assert (a + b).amount == a.amount + b.amount
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert (a + b) - b == a
    assert exponent((a + b).amount) == -minor_units(currency)
