"""Usage and one-off charges: recorded once, billed once, by the run the rules name."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from domain.billing.account import Account
from domain.billing.lines import LineKind
from domain.billing.terms import BillingScope, ChargeTerms, PackageTerms
from domain.shared.errors import AccountError
from domain.shared.periods import Frequency, Period, Timing

AT = datetime(2026, 1, 1, tzinfo=UTC)


def d(iso: str) -> date:
    return date.fromisoformat(iso)


def month(yyyy_mm: str) -> Period:
    start = d(f"{yyyy_mm}-01")
    following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return Period(start, date.fromordinal(following.toordinal() - 1))


def phone(frequency: Frequency = Frequency.MONTHLY, **changes: object) -> PackageTerms:
    values: dict[str, object] = {
        "package_id": "phone",
        "description": "Phone line",
        "amount": Decimal("20.00"),
        "frequency": frequency,
        "timing": Timing.ADVANCE,
        "start_date": d("2026-01-01"),
        "usage_rate": Decimal("0.0125"),
        "category": "virtual services",
    }
    values.update(changes)
    return PackageTerms.model_validate(values)


def account(*packages: PackageTerms) -> Account:
    acct = Account.open("ACME", "Acme", "EUR", None, "default", AT)
    for terms in packages or (phone(),):
        acct.subscribe(terms, None, AT)
    return acct


def use(acct: Account, usage_id: str, on: str, quantity: str = "100", **kw: object) -> bool:
    return acct.record_usage(usage_id, "phone", Decimal(quantity), d(on), AT, **kw)  # type: ignore[arg-type]


def charge(acct: Account, charge_id: str, on: str, amount: str = "10.00", **kw: object) -> bool:
    terms = ChargeTerms.model_validate(
        {"charge_id": charge_id, "description": f"Charge {charge_id}", "amount": Decimal(amount),
         "charge_date": d(on), **kw}
    )  # fmt: skip
    return acct.add_charge(terms, AT)


def bill(acct: Account, period: Period, scope: BillingScope | None = None) -> list[str]:
    lines = acct.bill(f"run-{period.start}", period, period.end, AT, scope)
    return [
        f"{line.source} {line.service_period_start}..{line.service_period_end} "
        f"x{line.quantity} {line.amount}"
        for line in lines
    ]


# -- Recording ------------------------------------------------------------------


def test_a_usage_id_seen_twice_is_recorded_once() -> None:
    acct = account()
    assert use(acct, "u1", "2026-01-05") is True
    assert use(acct, "u1", "2026-01-05") is False
    events = acct.collect_events()
    assert [type(e).__name__ for e in events].count("UsageRecorded") == 1
    assert list(acct.usage) == ["u1"]


def test_a_known_usage_id_with_other_data_is_refused() -> None:
    acct = account()
    use(acct, "u1", "2026-01-05")
    with pytest.raises(AccountError, match=r"already recorded .* other data"):
        use(acct, "u1", "2026-01-05", quantity="101")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on": "2025-12-31"}, "outside package phone"),
        ({"on": "2026-01-05", "package": "fax"}, "has no package 'fax'"),
        ({"on": "2026-01-05", "quantity": "Infinity"}, "finite"),
    ],
)
def test_bad_usage_is_refused(kwargs: dict[str, str], message: str) -> None:
    acct = account()
    with pytest.raises(AccountError, match=message):
        acct.record_usage(
            "u1",
            kwargs.get("package", "phone"),
            Decimal(kwargs.get("quantity", "1")),
            d(kwargs["on"]),
            AT,
        )


def test_usage_without_a_price_needs_the_package_usage_rate() -> None:
    acct = account(phone(usage_rate=None))
    with pytest.raises(AccountError, match="no unit price"):
        use(acct, "u1", "2026-01-05")
    assert use(acct, "u2", "2026-01-05", unit_price=Decimal("0.50")) is True


def test_usage_after_the_package_end_is_refused() -> None:
    acct = account(phone(end_date=d("2026-01-31")))
    with pytest.raises(AccountError, match="outside package phone"):
        use(acct, "u1", "2026-02-01")


# -- Billing usage (seed rule: with its package) ----------------------------------


def test_usage_is_billed_with_its_package_summed_per_price_and_description() -> None:
    acct = account()
    use(acct, "u1", "2026-01-05", "100")
    use(acct, "u2", "2026-01-20", "33")
    use(acct, "u3", "2026-01-21", "2", unit_price=Decimal("1.99"), description="Roaming")
    assert bill(acct, month("2026-01")) == [
        "package:phone 2026-01-01..2026-01-31 x1 20.00",
        "usage:phone 2026-01-05..2026-01-20 x133 1.66",  # 133 x 0.0125 = 1.6625, rounded once
        "usage:phone 2026-01-21..2026-01-21 x2 3.98",
    ]


def test_usage_after_the_period_end_waits_for_a_later_run() -> None:
    acct = account()
    use(acct, "jan", "2026-01-31")
    use(acct, "feb", "2026-02-01")
    assert bill(acct, month("2026-01"))[1:] == ["usage:phone 2026-01-31..2026-01-31 x100 1.25"]
    assert bill(acct, month("2026-02"))[1:] == ["usage:phone 2026-02-01..2026-02-01 x100 1.25"]


def test_late_usage_is_billed_by_the_next_run_never_lost_never_twice() -> None:
    acct = account()
    use(acct, "u1", "2026-01-10")
    bill(acct, month("2026-01"))
    use(acct, "late", "2026-01-12")  # arrives after January was invoiced
    assert bill(acct, month("2026-02")) == [
        "package:phone 2026-02-01..2026-02-28 x1 20.00",
        "usage:phone 2026-01-12..2026-01-12 x100 1.25",
    ]
    assert bill(acct, month("2026-03")) == ["package:phone 2026-03-01..2026-03-31 x1 20.00"]


def test_usage_of_a_package_not_due_waits_for_its_bill_date_then_includes_earlier_usage() -> None:
    acct = account(phone(Frequency.QUARTERLY, start_date=d("2025-12-01")))
    assert bill(acct, month("2025-12")) == ["package:phone 2025-12-01..2026-02-28 x1 20.00"]
    use(acct, "dec", "2025-12-20")
    use(acct, "jan", "2026-01-20")
    assert bill(acct, month("2026-01")) == []  # next bill date 2026-03-01
    assert bill(acct, month("2026-03")) == [
        "package:phone 2026-03-01..2026-05-31 x1 20.00",
        "usage:phone 2025-12-20..2026-01-20 x200 2.50",
    ]


def test_usage_of_an_ended_package_is_still_billed() -> None:
    acct = account(phone(end_date=d("2026-01-31")))
    bill(acct, month("2026-01"))
    use(acct, "late", "2026-01-30")
    assert bill(acct, month("2026-04")) == ["usage:phone 2026-01-30..2026-01-30 x100 1.25"]
    assert bill(acct, month("2026-05")) == []


def test_a_run_without_usage_leaves_it_for_a_later_run() -> None:
    acct = account()
    use(acct, "u1", "2026-01-10")
    assert bill(acct, month("2026-01"), BillingScope(usage=False)) == [
        "package:phone 2026-01-01..2026-01-31 x1 20.00"
    ]
    # February's run bills the package (due) and January's waiting usage.
    assert bill(acct, month("2026-02"))[1:] == ["usage:phone 2026-01-10..2026-01-10 x100 1.25"]


def test_a_usage_only_run_bills_usage_of_due_packages_without_their_periods() -> None:
    acct = account()
    use(acct, "u1", "2026-01-10")
    assert bill(acct, month("2026-01"), BillingScope(packages=False, charges=False)) == [
        "usage:phone 2026-01-10..2026-01-10 x100 1.25"
    ]
    assert acct.packages["phone"].next_bill_date == d("2026-01-01")  # period still to bill


# -- One-off charges ----------------------------------------------------------------


def test_a_charge_is_billed_once_by_the_first_run_whose_period_ends_on_or_after_its_date() -> None:
    acct = account()
    charge(acct, "setup", "2026-02-10", "49.99")
    charge(acct, "credit", "2026-01-15", "-5.00")
    assert bill(acct, month("2026-01"))[1:] == ["charge:credit 2026-01-15..2026-01-15 x1 -5.00"]
    assert bill(acct, month("2026-02"))[1:] == ["charge:setup 2026-02-10..2026-02-10 x1 49.99"]
    assert bill(acct, month("2026-03"))[1:] == []


def test_a_charge_dated_before_the_period_is_billed_by_the_next_run_with_charges() -> None:
    acct = account()
    charge(acct, "old", "2025-06-01")
    assert bill(acct, month("2026-01"), BillingScope(charges=False))[1:] == []
    assert bill(acct, month("2026-02"))[1:] == ["charge:old 2025-06-01..2025-06-01 x1 10.00"]


def test_the_same_charge_twice_is_added_once_and_another_under_its_id_refused() -> None:
    acct = account()
    assert charge(acct, "c1", "2026-01-05") is True
    assert charge(acct, "c1", "2026-01-05") is False
    with pytest.raises(AccountError, match="already on account"):
        charge(acct, "c1", "2026-01-05", "11.00")


def test_a_charge_with_more_decimals_than_the_currency_is_refused() -> None:
    with pytest.raises(AccountError, match="more decimals than EUR"):
        charge(account(), "c1", "2026-01-05", "1.005")


# -- Categories --------------------------------------------------------------------


def test_a_run_limited_to_categories_bills_only_those() -> None:
    rent = phone(package_id="office", description="Office", category="rent", usage_rate=None)
    acct = account(phone(), rent)
    use(acct, "u1", "2026-01-10")
    charge(acct, "sheet", "2026-01-10", category="charge sheets")
    only_rent = BillingScope(categories=("rent",))
    assert bill(acct, month("2026-01"), only_rent) == [
        "package:office 2026-01-01..2026-01-31 x1 20.00"
    ]
    rest = BillingScope(categories=("virtual services", "charge sheets"))
    assert bill(acct, month("2026-01"), rest) == [
        "package:phone 2026-01-01..2026-01-31 x1 20.00",
        "usage:phone 2026-01-10..2026-01-10 x100 1.25",
        "charge:sheet 2026-01-10..2026-01-10 x1 10.00",
    ]


def test_lines_carry_kind_and_category() -> None:
    acct = account()
    use(acct, "u1", "2026-01-10")
    charge(acct, "c1", "2026-01-10")
    lines = acct.bill("r", month("2026-01"), d("2026-01-31"), AT)
    assert [(line.kind, line.category) for line in lines] == [
        (LineKind.RECURRING, "virtual services"),
        (LineKind.USAGE, "virtual services"),
        (LineKind.CHARGE, "charges"),
    ]


# -- Replay ---------------------------------------------------------------------------


def test_an_account_rebuilt_from_its_events_bills_the_same() -> None:
    acct = account()
    use(acct, "u1", "2026-01-10")
    use(acct, "u2", "2026-02-10")
    charge(acct, "c1", "2026-02-01")
    bill(acct, month("2026-01"))
    events = acct.collect_events()
    rebuilt = Account.project(None, events)
    assert rebuilt is not None
    assert bill(rebuilt, month("2026-02")) == bill(acct, month("2026-02"))
