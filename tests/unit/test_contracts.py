"""Contract terms: an early-termination fee and a minimum spend, each billed at most
once per contract, in the first run (with the contract step) in which it is due."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from domain.billing.account import Account
from domain.billing.contracts import ContractTerms, PenaltyReason, penalties_due, term_end
from domain.billing.events import ContractPenaltyApplied
from domain.billing.lines import LineKind
from domain.billing.terms import BillingScope, ChargeTerms, PackageTerms
from domain.runs.settings import RunSettings
from domain.shared.errors import AccountError
from domain.shared.ids import contract_line_uuid
from domain.shared.model import DomainEvent
from domain.shared.periods import Frequency, Period, Timing, add_months

AT = datetime(2026, 1, 1, tzinfo=UTC)


def d(iso: str) -> date:
    return date.fromisoformat(iso)


def month(yyyy_mm: str) -> Period:
    start = d(f"{yyyy_mm}-01")
    return Period(start, date.fromordinal(add_months(start, 1).toordinal() - 1))


def months(first: str, last: str) -> list[str]:
    out, current = [], d(f"{first}-01")
    while current <= d(f"{last}-01"):
        out.append(current.isoformat()[:7])
        current = add_months(current, 1)
    return out


def package(package_id: str = "phone", amount: str = "20.00", **changes: object) -> PackageTerms:
    values: dict[str, object] = {
        "package_id": package_id,
        "description": package_id.title(),
        "amount": Decimal(amount),
        "frequency": Frequency.MONTHLY,
        "timing": Timing.ADVANCE,
        "start_date": d("2026-01-01"),
        "usage_rate": Decimal("0.0125"),
    }
    values.update(changes)
    return PackageTerms.model_validate(values)


def contract(
    package_id: str | None = None,
    *,
    fee: str | None = None,
    minimum: str | None = None,
    start: str = "2026-01-01",
    term_months: int = 12,
    **changes: object,
) -> ContractTerms:
    values: dict[str, object] = {
        "contract_id": "C1",
        "package_id": package_id,
        "start_date": d(start),
        "term_months": term_months,
        "early_termination_fee": None if fee is None else Decimal(fee),
        "minimum_spend": None if minimum is None else Decimal(minimum),
        "description": "24/7 contract",
    }
    values.update(changes)
    return ContractTerms.model_validate(values)


def open_account(*packages: PackageTerms, currency: str = "EUR", tax_rate: str = "0") -> Account:
    acct = Account.open("ACME", "Acme", currency, None, "default", AT, Decimal(tax_rate))
    for terms in packages:
        acct.subscribe(terms, None, AT)
    return acct


def penalties(
    acct: Account, period: Period, scope: BillingScope | None = None, run_id: str | None = None
) -> list[str]:
    """Bill `period`; the penalty lines, as `reason amount service-period`."""
    lines = acct.bill(run_id or f"run-{period}", period, period.end, AT, scope)
    return [
        f"{line.rule.split(':')[1]} {line.amount} {line.service_period_start}.."
        f"{line.service_period_end}"
        for line in lines
        if line.kind is LineKind.PENALTY
    ]


def bill_months(
    acct: Account, first: str, last: str, scope: BillingScope | None = None
) -> dict[str, list[str]]:
    """Bill month by month; the penalties per month, months without any left out."""
    out = {m: penalties(acct, month(m), scope) for m in months(first, last)}
    return {m: p for m, p in out.items() if p}


# -- The term ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "term_months", "end"),
    [
        ("2026-01-01", 12, "2026-12-31"),
        ("2026-01-15", 24, "2028-01-14"),
        ("2026-01-31", 1, "2026-02-27"),  # anchor day clamped to Feb 28, minus one day
        ("2026-01-31", 12, "2027-01-30"),
        ("2028-02-29", 12, "2029-02-27"),  # leap day: Feb 28 next year, minus one day
        ("2026-03-31", 1, "2026-04-29"),
    ],
)
def test_the_term_ends_the_day_before_the_anchor_day_term_months_later(
    start: str, term_months: int, end: str
) -> None:
    assert term_end(contract(start=start, term_months=term_months)) == d(end)


# -- Scenarios, month by month ---------------------------------------------------


@dataclass
class Scenario:
    contract: ContractTerms
    packages: tuple[PackageTerms, ...] = (package(),)
    terminated_on: str | None = None
    usage: tuple[tuple[str, str], ...] = ()
    """(day, quantity) of the phone package, at its usage rate 0.0125."""
    charges: tuple[tuple[str, str], ...] = ()
    """(day, amount): one-off charges, negative for a credit."""
    currency: str = "EUR"
    expected: dict[str, list[str]] = field(default_factory=dict)
    """Penalties billed per monthly run, January 2026 to March 2027."""


SCENARIOS = {
    "terminated early: the fee once, in the run whose period holds the termination": Scenario(
        contract("phone", fee="150.00"),
        terminated_on="2026-04-15",
        expected={"2026-04": ["early_termination 150.00 2026-04-16..2026-12-31"]},
    ),
    "terminated on the term's last day: not early, no fee": Scenario(
        contract("phone", fee="150.00"), terminated_on="2026-12-31"
    ),
    "terminated after the term: no fee": Scenario(
        contract("phone", fee="150.00"), terminated_on="2027-02-10"
    ),
    "commitment met exactly: 12 x 20.00 = 240.00": Scenario(contract(minimum="240.00")),
    "commitment short: 300.00 - 12 x 20.00 = 60.00, in the run holding the term's end": Scenario(
        contract(minimum="300.00"),
        expected={"2026-12": ["commitment_shortfall 60.00 2026-01-01..2026-12-31"]},
    ),
    "account contract counts every line: 300.00 - (240.00 + 12.50 + 10.00 - 5.00) = 42.50": (
        Scenario(
            contract(minimum="300.00"),
            usage=(("2026-03-10", "1000"),),
            charges=(("2026-05-01", "10.00"), ("2026-06-01", "-5.00")),
            expected={"2026-12": ["commitment_shortfall 42.50 2026-01-01..2026-12-31"]},
        )
    ),
    "package contract counts its package's periods and usage only: 300.00 - 252.50": Scenario(
        contract("phone", minimum="300.00"),
        packages=(package(), package("tv", "30.00")),
        usage=(("2026-03-10", "1000"),),
        charges=(("2026-05-01", "10.00"),),
        expected={"2026-12": ["commitment_shortfall 47.50 2026-01-01..2026-12-31"]},
    ),
    "terminated early and short: the fee and 300.00 - 4 x 20.00 = 220.00": Scenario(
        contract("phone", fee="150.00", minimum="300.00"),
        terminated_on="2026-04-15",
        expected={
            "2026-04": [
                "early_termination 150.00 2026-04-16..2026-12-31",
                "commitment_shortfall 220.00 2026-01-01..2026-04-15",
            ]
        },
    ),
    "arrears: the shortfall waits for the term's last period, billed after the term": Scenario(
        contract("phone", minimum="300.00"),
        packages=(package(timing=Timing.ARREARS),),
        expected={"2027-01": ["commitment_shortfall 60.00 2026-01-01..2026-12-31"]},
    ),
    "usage counts by its day: of a 2.50 line across the term's end, 1.25 is within": Scenario(
        contract("phone", minimum="50.00", start="2026-01-15", term_months=1),
        usage=(("2026-02-10", "100"), ("2026-02-20", "100")),
        # February's period (20.00) starts within 2026-01-15..2026-02-14, January's does not.
        expected={"2026-02": ["commitment_shortfall 28.75 2026-01-15..2026-02-14"]},
    ),
    "JPY: no minor unit, 10000 - 3 x 3000 = 1000": Scenario(
        contract("phone", minimum="10000", term_months=3),
        packages=(package(amount="3000"),),
        currency="JPY",
        expected={"2026-03": ["commitment_shortfall 1000 2026-01-01..2026-03-31"]},
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_contract_penalties_month_by_month(scenario: Scenario) -> None:
    acct = open_account(*scenario.packages, currency=scenario.currency)
    assert acct.agree_contract(scenario.contract, AT) is True
    if scenario.terminated_on:
        acct.terminate_contract("C1", d(scenario.terminated_on), AT)
    for n, (day, quantity) in enumerate(scenario.usage):
        acct.record_usage(f"u{n}", "phone", Decimal(quantity), d(day), AT)
    for n, (day, amount) in enumerate(scenario.charges):
        terms = ChargeTerms(
            charge_id=f"c{n}", description="Charge", amount=Decimal(amount), charge_date=d(day)
        )
        acct.add_charge(terms, AT)

    assert bill_months(acct, "2026-01", "2027-03") == scenario.expected
    applied = [e for e in acct.collect_events() if isinstance(e, ContractPenaltyApplied)]
    assert len(applied) == sum(len(p) for p in scenario.expected.values())


# -- Never twice -------------------------------------------------------------------


def test_a_shortfall_is_applied_once_however_often_the_period_is_billed_again() -> None:
    acct = open_account(package())
    acct.agree_contract(contract(minimum="300.00"), AT)
    bill_months(acct, "2026-01", "2026-11")

    assert penalties(acct, month("2026-12")) == [
        "commitment_shortfall 60.00 2026-01-01..2026-12-31"
    ]
    assert penalties(acct, month("2026-12"), run_id="december-again") == []
    assert penalties(acct, Period(d("2026-01-01"), d("2026-12-31")), run_id="year") == []
    assert bill_months(acct, "2027-01", "2027-06") == {}


def test_a_credit_in_the_term_billed_after_the_shortfall_does_not_reopen_it() -> None:
    acct = open_account(package())
    acct.agree_contract(contract(minimum="300.00"), AT)
    assert bill_months(acct, "2026-01", "2026-12") == {
        "2026-12": ["commitment_shortfall 60.00 2026-01-01..2026-12-31"]
    }
    acct.add_charge(
        ChargeTerms(
            charge_id="late-credit", description="Credit", amount=Decimal("-50.00"),
            charge_date=d("2026-06-15"),
        ),
        AT,
    )  # fmt: skip
    assert acct.contract_spend("C1") == Decimal("240.00")  # not billed yet
    assert penalties(acct, month("2027-01")) == []
    assert acct.contract_spend("C1") == Decimal("190.00")


def test_a_fee_is_applied_once_and_the_next_runs_apply_nothing() -> None:
    acct = open_account(package())
    acct.agree_contract(contract("phone", fee="150.00"), AT)
    acct.terminate_contract("C1", d("2026-04-15"), AT)
    bill_months(acct, "2026-01", "2026-03")

    assert penalties(acct, month("2026-04")) == ["early_termination 150.00 2026-04-16..2026-12-31"]
    assert penalties(acct, month("2026-04"), run_id="april-again") == []
    assert bill_months(acct, "2026-05", "2027-03") == {}


def test_a_termination_recorded_late_is_billed_by_the_next_run_seed_rule() -> None:
    acct = open_account(package())
    acct.agree_contract(contract("phone", fee="150.00"), AT)
    assert bill_months(acct, "2026-01", "2026-05") == {}

    acct.terminate_contract("C1", d("2026-04-15"), AT)  # recorded in June, back-dated

    assert penalties(acct, month("2026-06")) == ["early_termination 150.00 2026-04-16..2026-12-31"]


def test_a_shortfall_of_a_term_before_the_first_run_is_billed_by_that_run_seed_rule() -> None:
    # No package: the account's spend is one charge; the first run is June's.
    acct = open_account()
    acct.agree_contract(contract(minimum="100.00", term_months=3), AT)
    acct.add_charge(
        ChargeTerms(charge_id="c1", description="Setup", amount=Decimal("30.00"),
                    charge_date=d("2026-02-10")),
        AT,
    )  # fmt: skip

    assert penalties(acct, month("2026-06")) == [
        "commitment_shortfall 70.00 2026-01-01..2026-03-31"
    ]


def test_a_future_termination_waits_for_the_run_whose_period_holds_it() -> None:
    acct = open_account(package())
    acct.agree_contract(contract("phone", fee="150.00"), AT)
    acct.terminate_contract("C1", d("2026-06-30"), AT)  # notice given in January

    assert bill_months(acct, "2026-01", "2026-12") == {
        "2026-06": ["early_termination 150.00 2026-07-01..2026-12-31"]
    }


# -- The run's contract step -------------------------------------------------------


def test_runs_without_the_contract_step_apply_nothing_and_a_later_run_with_it_does() -> None:
    acct = open_account(package())
    acct.agree_contract(contract("phone", fee="150.00", minimum="300.00"), AT)
    acct.terminate_contract("C1", d("2026-04-15"), AT)
    without = RunSettings(run_contracts=False).scope
    assert without.contracts is False

    assert bill_months(acct, "2026-01", "2026-12", scope=without) == {}
    # January 2027's period starts after the term and the termination: applied all the same.
    assert penalties(acct, month("2027-01")) == [
        "early_termination 150.00 2026-04-16..2026-12-31",
        "commitment_shortfall 220.00 2026-01-01..2026-04-15",
    ]
    assert penalties(acct, month("2027-01"), run_id="again") == []


def test_a_run_limited_to_other_categories_leaves_penalties_for_a_later_run() -> None:
    acct = open_account(package())
    acct.agree_contract(contract("phone", fee="150.00"), AT)
    acct.terminate_contract("C1", d("2026-01-20"), AT)

    services_only = RunSettings(categories=("services",)).scope
    assert penalties(acct, month("2026-01"), services_only) == []
    assert penalties(acct, month("2026-02")) == ["early_termination 150.00 2026-01-21..2026-12-31"]


def test_billing_only_package_periods_applies_no_penalty() -> None:
    acct = open_account(package())
    acct.agree_contract(contract("phone", fee="150.00"), AT)
    acct.terminate_contract("C1", d("2026-01-20"), AT)
    lines = acct.bill_packages("r", month("2026-01"), d("2026-01-31"), AT)
    assert [line.kind for line in lines] == [LineKind.RECURRING]


# -- The penalty line --------------------------------------------------------------


@pytest.mark.parametrize(
    ("contract_tax_rate", "tax"),
    [(None, "30.00"), (Decimal("0"), "0.00"), (Decimal("5.5"), "8.25")],
    ids=["the account's 20 %", "zero-rated contract", "the contract's 5.5 %"],
)
def test_the_penalty_line_names_its_contract_reason_and_tax(
    contract_tax_rate: Decimal | None, tax: str
) -> None:
    acct = open_account(package(), tax_rate="20")
    acct.agree_contract(contract("phone", fee="150.00", tax_rate=contract_tax_rate), AT)
    acct.terminate_contract("C1", d("2026-01-20"), AT)

    lines = acct.bill("2026-01", month("2026-01"), d("2026-01-31"), AT)

    line = lines[-1]
    expected = {
        "line_id": contract_line_uuid("ACME", "C1", "early_termination"),
        "account_id": "ACME",
        "run_id": "2026-01",
        "source": "contract:C1",
        "description": "24/7 contract: early termination fee",
        "service_period_start": d("2026-01-21"),
        "service_period_end": d("2026-12-31"),
        "quantity": Decimal(1),
        "unit_amount": Decimal("150.00"),
        "amount": Decimal("150.00"),
        "currency": "EUR",
        "posting_date": d("2026-01-31"),
        "rule": "contract:early_termination:fee",
        "kind": LineKind.PENALTY,
        "category": "contract services",
        "tax_rate": Decimal(20) if contract_tax_rate is None else contract_tax_rate,
        "tax": Decimal(tax),
    }
    assert {name: getattr(line, name) for name in expected} == expected
    event = acct.collect_events()[-1]
    assert isinstance(event, ContractPenaltyApplied)
    assert (event.run_id, event.contract_id, event.reason, event.amount, event.line) == (
        "2026-01", "C1", PenaltyReason.EARLY_TERMINATION, Decimal("150.00"), line,
    )  # fmt: skip


def test_the_shortfall_line_states_its_formula() -> None:
    acct = open_account(package())
    acct.agree_contract(contract(minimum="300.00"), AT)
    lines = [acct.bill(m, month(m), month(m).end, AT) for m in months("2026-01", "2026-12")]
    line = lines[-1][-1]
    assert (line.rule, line.description, line.amount) == (
        "contract:commitment_shortfall:300.00-240.00",
        "24/7 contract: minimum spend shortfall",
        Decimal("60.00"),
    )


# -- Replay ------------------------------------------------------------------------


def test_replaying_the_events_rebuilds_the_same_contracts_spend_and_penalties() -> None:
    events: list[DomainEvent] = []
    acct = open_account(package(), package("tv", "30.00"))
    acct.agree_contract(contract("phone", fee="150.00", minimum="300.00"), AT)
    acct.agree_contract(contract(minimum="700.00", contract_id="C2"), AT)
    acct.record_usage("u1", "phone", Decimal("1000"), d("2026-02-10"), AT)
    acct.terminate_contract("C1", d("2026-04-15"), AT)
    history = bill_months(acct, "2026-01", "2027-01")
    events.extend(acct.collect_events())

    rebuilt = Account.project(None, events)

    assert rebuilt is not None
    assert history == {
        "2026-04": [
            "early_termination 150.00 2026-04-16..2026-12-31",
            # 4 x 20.00 + 12.50 usage
            "commitment_shortfall 207.50 2026-01-01..2026-04-15",
        ],
        # 12 x 20.00 + 12 x 30.00 + 12.50 + the C1 penalties are not spend: 700 - 612.50
        "2026-12": ["commitment_shortfall 87.50 2026-01-01..2026-12-31"],
    }
    assert rebuilt.contracts == acct.contracts
    assert rebuilt.billed == acct.billed
    assert [rebuilt.contract_spend(c) for c in ("C1", "C2")] == [
        Decimal("92.50"),
        Decimal("612.50"),
    ]
    assert bill_months(rebuilt, "2026-01", "2027-03") == {}


# -- Agreeing and terminating ------------------------------------------------------


def test_the_same_contract_again_records_nothing_and_other_terms_are_refused() -> None:
    acct = open_account(package())
    assert acct.agree_contract(contract("phone", fee="150.00"), AT) is True
    assert acct.agree_contract(contract("phone", fee="150.00"), AT) is False
    with pytest.raises(AccountError, match="already on account ACME with other terms"):
        acct.agree_contract(contract("phone", fee="99.00"), AT)
    assert acct.terminate_contract("C1", d("2026-03-31"), AT) is True
    assert acct.terminate_contract("C1", d("2026-03-31"), AT) is False
    with pytest.raises(AccountError, match="already terminated on 2026-03-31"):
        acct.terminate_contract("C1", d("2026-04-30"), AT)
    kinds = [type(e).__name__ for e in acct.collect_events()]
    assert kinds.count("ContractAgreed") == kinds.count("ContractTerminated") == 1


def test_terminating_a_package_contract_leaves_the_package_alone() -> None:
    acct = open_account(package())
    acct.agree_contract(contract("phone", fee="150.00"), AT)
    acct.terminate_contract("C1", d("2026-01-20"), AT)
    assert acct.packages["phone"].terms.end_date is None


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        (contract("fax", fee="1.00"), "has no package 'fax'"),
        (contract(fee="1.00", contract_id=" "), "non-empty id"),
        (contract(fee="1.00", term_months=0), "minimum term of 0 months"),
        (contract(), "needs an early-termination fee, a minimum spend or both"),
        (contract(fee="-1.00"), "early-termination fee -1.00 must be positive"),
        (contract(minimum="0"), "minimum spend 0 must be positive"),
        (contract(minimum="10.005"), "more decimals than EUR allows"),
        (contract(fee="1.00", tax_rate=Decimal(101)), "tax rate 101"),
        (contract(fee="1.00", description=" "), "needs a description"),
    ],
)
def test_bad_contracts_are_refused(terms: ContractTerms, message: str) -> None:
    acct = open_account(package())
    with pytest.raises(AccountError, match=message):
        acct.agree_contract(terms, AT)
    assert not acct.contracts


@pytest.mark.parametrize(
    ("contract_id", "on", "message"),
    [
        ("C9", "2026-02-01", "has no contract 'C9'"),
        ("C1", "2025-12-31", "before its start date 2026-01-01"),
    ],
)
def test_bad_terminations_are_refused(contract_id: str, on: str, message: str) -> None:
    acct = open_account(package())
    acct.agree_contract(contract(fee="1.00"), AT)
    with pytest.raises(AccountError, match=message):
        acct.terminate_contract(contract_id, d(on), AT)


# -- The rule itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("terminated_on", "spend", "evaluated_on", "applied", "expected"),
    [
        (None, "0", "2026-12-30", (), []),  # the term has not ended
        (None, "0", "2026-12-31", (), ["commitment_shortfall 300.00"]),
        (None, "300.00", "2026-12-31", (), []),  # met exactly
        (None, "299.99", "2027-06-30", (), ["commitment_shortfall 0.01"]),
        ("2026-05-31", "100.00", "2026-05-30", (), []),  # terminated after the run's end
        ("2026-05-31", "100.00", "2026-05-31", (),
         ["early_termination 150.00", "commitment_shortfall 200.00"]),
        ("2026-05-31", "100.00", "2026-06-30", ("early_termination",),
         ["commitment_shortfall 200.00"]),
        ("2026-05-31", "100.00", "2026-06-30", ("early_termination", "commitment_shortfall"),
         []),
    ],
)  # fmt: skip
def test_penalties_due(
    terminated_on: str | None,
    spend: str,
    evaluated_on: str,
    applied: tuple[str, ...],
    expected: list[str],
) -> None:
    due = penalties_due(
        contract(fee="150.00", minimum="300.00"),
        None if terminated_on is None else d(terminated_on),
        Decimal(spend),
        d(evaluated_on),
        "EUR",
        applied=[PenaltyReason(a) for a in applied],
    )
    assert [f"{p.reason} {p.amount}" for p in due] == expected


def test_no_shortfall_while_the_terms_spend_is_incomplete() -> None:
    terms = contract(minimum="300.00")
    assert (
        penalties_due(terms, None, Decimal(0), d("2027-01-31"), "EUR", spend_complete=False) == []
    )
