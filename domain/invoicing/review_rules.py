"""Validation rules applied when an invoice closes: a bill group's rule set and
the verdict of each rule.

A rule either passes or asks for an action: `quarantine` (the invoice waits for
an operator) or `reject` (it is never issued). Rules are evaluated in a fixed
order, most severe first (`reject_negative`, `quarantine_above`,
`quarantine_without_email`), and the first rule that objects decides the
invoice's review status; every rule's verdict, passing or not, is recorded on
the invoice with its reason (`domain.invoicing.invoice.Invoice.record_verdicts`).

Pure: the caller passes the closed invoice's total and currency and the
invoicer's invoice email.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum

from domain.shared.errors import DomainError
from domain.shared.model import ValueObject


class RuleAction(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    QUARANTINE = "quarantine"
    REJECT = "reject"


class RuleName(StrEnum):
    REJECT_NEGATIVE = "reject_negative"
    QUARANTINE_ABOVE = "quarantine_above"
    QUARANTINE_WITHOUT_EMAIL = "quarantine_without_email"


class Verdict(ValueObject):
    """One rule's judgement of one invoice, with its reason in words."""

    rule: str
    action: RuleAction
    reason: str

    @property
    def objects(self) -> bool:
        return self.action is not RuleAction.PASS


class ReviewRules(ValueObject):
    """A bill group's rules; the defaults switch every rule off."""

    quarantine_above: Decimal | None = None
    """Quarantine an invoice whose total is above this amount (in the invoice's own
    currency); None: no threshold."""
    reject_negative: bool = False
    """Reject an invoice whose total is negative (a credit balance is not billed)."""
    quarantine_without_email: bool = False
    """Quarantine an invoice whose account has no invoice email."""

    @classmethod
    def checked(
        cls,
        quarantine_above: Decimal | None = None,
        reject_negative: bool = False,
        quarantine_without_email: bool = False,
    ) -> ReviewRules:
        """The rules, refusing a threshold that is not a finite, non-negative amount."""
        if quarantine_above is not None and (
            not quarantine_above.is_finite() or quarantine_above < 0
        ):
            raise DomainError(
                f"quarantine_above must be a non-negative amount, not {quarantine_above}"
            )
        return cls(
            quarantine_above=quarantine_above,
            reject_negative=reject_negative,
            quarantine_without_email=quarantine_without_email,
        )

    @property
    def enabled(self) -> bool:
        return (
            self.quarantine_above is not None
            or self.reject_negative
            or self.quarantine_without_email
        )

    def evaluate(
        self, total: Decimal, currency: str, account_id: str, invoice_email: str | None
    ) -> list[Verdict]:
        """The verdict of each enabled rule, most severe rule first."""
        verdicts: list[Verdict] = []
        amount = f"{total} {currency}"
        if self.reject_negative:
            verdicts.append(
                _judged(
                    RuleName.REJECT_NEGATIVE,
                    total < 0,
                    RuleAction.REJECT,
                    f"total {amount} is negative",
                    f"total {amount} is not negative",
                )
            )
        if self.quarantine_above is not None:
            threshold = f"{self.quarantine_above} {currency}"
            verdicts.append(
                _judged(
                    RuleName.QUARANTINE_ABOVE,
                    total > self.quarantine_above,
                    RuleAction.QUARANTINE,
                    f"total {amount} is above the threshold of {threshold}",
                    f"total {amount} is not above the threshold of {threshold}",
                )
            )
        if self.quarantine_without_email:
            verdicts.append(
                _judged(
                    RuleName.QUARANTINE_WITHOUT_EMAIL,
                    not invoice_email,
                    RuleAction.QUARANTINE,
                    f"account {account_id} has no invoice email",
                    f"account {account_id} has invoice email {invoice_email}",
                )
            )
        return verdicts


def _judged(
    rule: RuleName, objects: bool, action: RuleAction, objection: str, passing: str
) -> Verdict:
    """`action` with its `objection` when the rule objects; otherwise a pass, `passing`."""
    if objects:
        return Verdict(rule=rule.value, action=action, reason=objection)
    return Verdict(rule=rule.value, action=RuleAction.PASS, reason=passing)


def decisive(verdicts: Iterable[Verdict]) -> Verdict | None:
    """The verdict that decides the invoice's status: the first that objects."""
    return next((verdict for verdict in verdicts if verdict.objects), None)
