"""Dunning rules: what happens to an account as its invoices become overdue.

A bill group's rules are a ladder of stages, each reached at a number of days
past an invoice's due date, each with its actions: `notify` (an email from a
template, by the group's delivery channel), `late_fee` (a fixed amount or a
percentage of the overdue amount, billed as a one-off charge on the account's
next invoice) and `suspend` (the account is suspended until the invoices that
suspended it are paid). Pure: the caller passes the days overdue and amounts.

Only the highest stage an invoice has reached is applied, and only when it is
above the stage already applied to that invoice: an invoice first seen 65 days
overdue gets the 60-day stage once, never the 15- and 30-day stages after it,
and a stage is never applied twice to the same invoice however often dunning
runs (`domain.receivables.receivables.Receivables.run_dunning`).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import field_validator

from domain.shared.errors import DomainError
from domain.shared.model import ValueObject
from domain.shared.money import round_to_currency


class DunningAction(StrEnum):
    NOTIFY = "notify"
    LATE_FEE = "late_fee"
    SUSPEND = "suspend"


class SuspendedBilling(StrEnum):
    """What a suspended account means for a bill run (a bill group setting)."""

    BILL = "bill"
    """Billed as usual: the account still owes its packages while suspended, and its
    invoices go out (the default)."""
    HOLD_INVOICES = "hold_invoices"
    """Billed, but its invoices are held (closed and numbered, not rendered or
    delivered) until it is reinstated; the first run after that releases them."""


class DunningStage(ValueObject):
    """One rung of the ladder: reached `days_overdue` days after the due date."""

    days_overdue: int
    notify: bool = False
    late_fee: Decimal | None = None
    """A fixed fee, in the account's currency."""
    late_fee_percent: Decimal | None = None
    """A fee as a percentage of the invoice's overdue amount, rounded once."""
    suspend: bool = False
    template: str | None = None
    """The notice's jinja2 body; None: the built-in notice."""

    @field_validator("late_fee", "late_fee_percent")
    @classmethod
    def _finite_and_positive(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and (not value.is_finite() or value <= 0):
            raise ValueError(f"a late fee must be a positive amount, not {value}")
        return value

    @property
    def actions(self) -> tuple[DunningAction, ...]:
        found = []
        if self.notify:
            found.append(DunningAction.NOTIFY)
        if self.late_fee is not None or self.late_fee_percent is not None:
            found.append(DunningAction.LATE_FEE)
        if self.suspend:
            found.append(DunningAction.SUSPEND)
        return tuple(found)

    def fee(self, overdue: Decimal, currency: str) -> Decimal:
        """The late fee for `overdue`: the fixed part plus the percentage, rounded once
        to the currency's minor unit (HALF_UP, the one rounding rule)."""
        fee = self.late_fee or Decimal(0)
        if self.late_fee_percent is not None:
            fee += overdue * self.late_fee_percent / 100
        return round_to_currency(fee, currency)


class DunningRules(ValueObject):
    """A bill group's ladder of stages, by days overdue (none: no dunning)."""

    name: str = "default"
    stages: tuple[DunningStage, ...] = ()

    @classmethod
    def checked(cls, name: str, stages: list[DunningStage]) -> DunningRules:
        days = [s.days_overdue for s in stages]
        if any(d < 1 for d in days):
            raise DomainError(f"dunning rule {name}: a stage is reached 1 day overdue or later")
        if days != sorted(set(days)):
            raise DomainError(
                f"dunning rule {name}: stages must be in increasing days overdue, got {days}"
            )
        for number, stage in enumerate(stages, start=1):
            if not stage.actions:
                raise DomainError(f"dunning rule {name}: stage {number} has no action")
        return cls(name=name, stages=tuple(stages))

    @property
    def enabled(self) -> bool:
        return bool(self.stages)

    def reached(self, days_overdue: int) -> tuple[int, DunningStage] | None:
        """The highest stage reached `days_overdue` days after the due date, with its
        number (1-based); None before the first."""
        found = None
        for number, stage in enumerate(self.stages, start=1):
            if stage.days_overdue <= days_overdue:
                found = (number, stage)
        return found
