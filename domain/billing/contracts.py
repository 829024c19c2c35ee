"""Contract terms: a minimum term with an early-termination fee, and a minimum
spend committed over the term, on one package or on the whole account.

Pure rules, no state: `domain.billing.account` keeps the contracts, what was billed and
which penalties were applied, and asks `penalties_due` in every bill run whose
settings include the contract step (`run_contracts`). See docs/contracts.md.

- The term is `[start_date, term_end]`, `term_end = add_months(start_date,
  term_months) - 1 day` (anchor-day arithmetic: a 12-month term from Jan 31
  ends on Jan 30 of the next year; one month from Jan 31 ends on Feb 27, the
  day before Feb 28).
- The contract ends on `term_end`, or earlier on its termination date (the
  last day of service, inclusive, like a package's end date).
- Early termination: terminated before `term_end`, and the termination date is
  on or before the run's period end -> the fee, in full (a flat fee, not pro
  rata: the contract states the amount).
- Commitment shortfall: the contract has ended (on `term_end` or by
  termination) on or before the run's period end, everything it counts within
  the term has been billed, and the spend billed within `[start_date, end]` is
  below `minimum_spend` -> `minimum_spend - spend`.
- Each kind is applied at most once per contract; periods before the run's
  period start are evaluated too (seed rule), so a run that comes late still
  applies what is due.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import field_validator

from domain.shared.model import ValueObject
from domain.shared.money import finite, round_to_currency
from domain.shared.periods import Period, add_months

DEFAULT_CONTRACT_CATEGORY = "contract services"
ZERO = Decimal(0)


class PenaltyReason(StrEnum):
    EARLY_TERMINATION = "early_termination"
    COMMITMENT_SHORTFALL = "commitment_shortfall"


class ContractTerms(ValueObject):
    """A contract on one package (`package_id`) or, None, on the whole account."""

    contract_id: str
    package_id: str | None = None
    start_date: date
    term_months: int
    """The minimum term, in calendar months from the start date."""
    early_termination_fee: Decimal | None = None
    """Charged once when the contract is terminated before its term ends."""
    minimum_spend: Decimal | None = None
    """Committed over the whole term, in the account's currency."""
    description: str
    category: str = DEFAULT_CONTRACT_CATEGORY
    tax_rate: Decimal | None = None
    """Percent; None: the account's rate."""

    _check = field_validator("early_termination_fee", "minimum_spend", "tax_rate")(finite)


def term_end(terms: ContractTerms) -> date:
    """The last day of the minimum term."""
    return add_months(terms.start_date, terms.term_months) - timedelta(days=1)


def contract_end(terms: ContractTerms, terminated_on: date | None) -> date:
    """The contract's last day: its term end, or its termination date if earlier."""
    end = term_end(terms)
    return end if terminated_on is None else min(end, terminated_on)


@dataclass(frozen=True, slots=True)
class BilledItem:
    """What a contract's spend counts of one billed line, or of one usage record.

    A recurring line counts on its service period's first day, a charge on its
    date, a usage record on its day. Usage is priced as its line was:
    `round(sum(quantities) * unit price)` per line, over the records within the
    term, so a line wholly within the term counts exactly its billed amount.
    """

    line: str
    """The line's key; usage records of one key and unit price were one line."""
    package_id: str | None
    """None: a one-off charge or credit (counted by account contracts only)."""
    on: date
    amount: Decimal = ZERO
    """A recurring line's or a charge's billed amount (not used for usage)."""
    quantity: Decimal = ZERO
    unit_price: Decimal | None = None
    """Set for a usage record (whose `quantity` counts)."""


def spend_within(
    items: Iterable[BilledItem], package_id: str | None, period: Period, currency: str
) -> Decimal:
    """The amount billed for `package_id` (None: everything) on days within `period`.

    A package contract counts its package's recurring and usage lines; an
    account contract counts every line, credits included.
    """
    total = ZERO
    usage: dict[tuple[str, Decimal], Decimal] = {}
    for item in items:
        if package_id is not None and item.package_id != package_id:
            continue
        if item.on not in period:
            continue
        if item.unit_price is None:
            total += item.amount
        else:
            key = (item.line, item.unit_price)
            usage[key] = usage.get(key, ZERO) + item.quantity
    for (_, price), quantity in usage.items():
        total += round_to_currency(quantity * price, currency)
    return round_to_currency(total, currency)


@dataclass(frozen=True, slots=True)
class PenaltyDue:
    reason: PenaltyReason
    amount: Decimal
    period: Period
    """The days the penalty is for: the unserved rest of the term (early
    termination) or the days whose spend was measured (shortfall)."""
    rule: str
    """How the amount was found, printed as the line's rule."""


def penalties_due(
    terms: ContractTerms,
    terminated_on: date | None,
    spend: Decimal,
    evaluation_date: date,
    currency: str,
    applied: Iterable[PenaltyReason] = (),
    spend_complete: bool = True,
) -> list[PenaltyDue]:
    """The penalties due on `evaluation_date` (a run's period end) not yet `applied`.

    `spend` is what was billed within `[start_date, contract_end]` (see
    `spend_within`); `spend_complete` says that everything the contract counts
    within that span has been billed, so a shortfall is not charged on a term
    whose last periods or usage are still to be billed (an arrears package bills
    the term's last period after the term ends).
    """
    done = set(applied)
    due: list[PenaltyDue] = []
    end = term_end(terms)
    last = contract_end(terms, terminated_on)
    fee = terms.early_termination_fee
    if (
        PenaltyReason.EARLY_TERMINATION not in done
        and fee is not None
        and fee != ZERO
        and terminated_on is not None
        and terminated_on < end
        and terminated_on <= evaluation_date
    ):
        amount = round_to_currency(fee, currency)
        due.append(
            PenaltyDue(
                PenaltyReason.EARLY_TERMINATION,
                amount,
                Period(terminated_on + timedelta(days=1), end),
                "contract:early_termination:fee",
            )
        )
    minimum = terms.minimum_spend
    if (
        PenaltyReason.COMMITMENT_SHORTFALL not in done
        and minimum is not None
        and last <= evaluation_date
        and spend_complete
        and spend < minimum
    ):
        amount = round_to_currency(minimum - spend, currency)
        due.append(
            PenaltyDue(
                PenaltyReason.COMMITMENT_SHORTFALL,
                amount,
                Period(terms.start_date, last),
                f"contract:commitment_shortfall:{minimum}-{spend}",  # minimum - spend
            )
        )
    return due
