"""Every Decimal that leaves billrun is in plain notation: converted lines (what
`InvoiceLineAdded` stores and `--json` prints) never carry `1E+2`, and their
amounts sit at the currency's minor unit."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from domain.billing.exchange_rates import RateSnapshot, convert_line
from domain.billing.lines import InvoiceLine
from domain.shared.money import exact_price, minor_units, plain, round_to_currency

CURRENCIES = ["EUR", "USD", "JPY", "KWD", "GBP", "CLF"]


def line(unit: Decimal, quantity: Decimal, currency: str) -> InvoiceLine:
    amount = round_to_currency(unit * quantity, currency)
    return InvoiceLine(
        line_id=uuid4(),
        account_id="BRANCH",
        run_id="jan",
        source="package:desk",
        description="Desk",
        service_period_start=date(2026, 1, 1),
        service_period_end=date(2026, 1, 31),
        quantity=quantity,
        unit_amount=unit,
        amount=amount,
        currency=currency,
        posting_date=date(2026, 1, 31),
        rule="recurring:monthly:advance",
        tax_rate=Decimal(20),
        tax=round_to_currency(amount * Decimal("0.2"), currency),
    )


def decimal_texts(dumped: dict[str, Any]) -> dict[str, str]:
    names = ("quantity", "unit_amount", "amount", "tax_rate", "tax", "original_amount")
    names += ("exchange_rate", "base_amount")
    return {name: dumped[name] for name in names if dumped[name] is not None}


def decimals(places: int, low: str, high: str) -> st.SearchStrategy[Decimal]:
    return st.decimals(Decimal(low), Decimal(high), places=places, allow_nan=False)


@given(
    unit=st.one_of(
        decimals(2, "0.01", "100000"), st.sampled_from([D * 100 for D in map(Decimal, "12345")])
    ),
    quantity=st.one_of(st.just(Decimal(1)), decimals(3, "0.001", "1000")),
    rate=st.one_of(
        decimals(6, "0.000001", "10000"),
        st.sampled_from([Decimal("1.25"), Decimal("0.8"), Decimal("1E+2"), Decimal("0.0001")]),
    ),
    source=st.sampled_from(CURRENCIES),
    target=st.sampled_from(CURRENCIES),
    base=st.sampled_from([None, *CURRENCIES]),
    direct=st.booleans(),
)
def test_converted_lines_are_written_in_plain_notation_at_the_currency_scale(
    unit: Decimal,
    quantity: Decimal,
    rate: Decimal,
    source: str,
    target: str,
    base: str | None,
    direct: bool,
) -> None:
    rates = {f"{source}/{target}" if direct else f"{target}/{source}": rate}
    if base is not None:
        rates.update({f"{c}/{base}": rate for c in CURRENCIES if c != base})
    snapshot = RateSnapshot(on=date(2026, 1, 31), base_currency=base, rates=rates)
    converted = convert_line(line(unit, quantity, source), target, snapshot)

    texts = decimal_texts(converted.model_dump(mode="json"))
    assert all("E" not in text and "e" not in text for text in texts.values()), texts
    assert texts["amount"] == plain(round_to_currency(converted.amount, target))
    assert -Decimal(texts["amount"]).as_tuple().exponent == minor_units(target)  # type: ignore[operator]
    assert -Decimal(texts["tax"]).as_tuple().exponent == minor_units(target)  # type: ignore[operator]
    if base is not None:
        assert -Decimal(texts["base_amount"]).as_tuple().exponent == minor_units(base)  # type: ignore[operator]
    assert converted.unit_amount == exact_price(converted.unit_amount, target)
    assert Decimal(texts["unit_amount"]) == converted.unit_amount


@given(value=st.decimals(allow_nan=False, allow_infinity=False))
def test_plain_notation_keeps_the_value_and_never_writes_an_exponent(value: Decimal) -> None:
    text = plain(value)
    assert "E" not in text and Decimal(text) == value


def test_a_line_stored_with_an_exponent_is_written_plain() -> None:
    # Lines converted before the fix were stored with `1E+2`; they read back plain.
    stored = line(Decimal(100), Decimal(1), "EUR").model_dump(mode="json")
    stored["unit_amount"], stored["exchange_rate"] = "1E+2", "1E+4"
    again = InvoiceLine.model_validate(stored).model_dump(mode="json")
    assert (again["unit_amount"], again["exchange_rate"]) == ("100", "10000")
