"""The billing engine: what an account owes in a run's window, priced as lines.

`Account.bill` delegates here. The engine reads the account's state through
`Billable` and records each billing through `record` (the account's `_trigger`,
with the time bound), so the account's handlers evolve its state as billing
goes: the next bill date advances as each period is billed, and contract spend
counts this run's lines before penalties are decided. It never imports
`Account`, performs no I/O and reads no clock.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from domain.billing.contracts import (
    BilledItem,
    ContractTerms,
    PenaltyDue,
    PenaltyReason,
    penalties_due,
)
from domain.billing.events import ChargeBilled, ContractPenaltyApplied, PackageBilled, UsageBilled
from domain.billing.lines import InvoiceLine, LineKind
from domain.billing.pricing import overlap, prorated, tax_on
from domain.billing.state import Charge, Contract, Package
from domain.billing.terms import BillingScope, ChargeTerms, PackageTerms, UsageRecord
from domain.shared.ids import (
    charge_line_uuid,
    contract_line_uuid,
    package_line_uuid,
    usage_line_uuid,
)
from domain.shared.model import DomainEvent
from domain.shared.money import round_to_currency
from domain.shared.periods import Period, service_period

PENALTY_LABELS = {
    PenaltyReason.EARLY_TERMINATION: "early termination fee",
    PenaltyReason.COMMITMENT_SHORTFALL: "minimum spend shortfall",
}


class Billable(Protocol):
    """What the engine reads of an account."""

    account_id: str
    currency: str
    tax_rate: Decimal
    packages: dict[str, Package]
    charges: dict[str, Charge]
    contracts: dict[str, Contract]
    billed: list[BilledItem]


class Record(Protocol):
    """Records one event on the account (and applies it, so its state moves on)."""

    def __call__(self, event_class: type[DomainEvent], /, **fields: Any) -> None: ...


class BillingEngine:
    """Bills one account: one engine per `Account.bill` call."""

    def __init__(self, account: Billable, record: Record) -> None:
        self.account = account
        self._record = record

    def bill(
        self,
        run_id: str,
        window: Period,
        posting_date: date,
        scope: BillingScope | None = None,
    ) -> list[InvoiceLine]:
        """Bill what is due in `window` (package periods, usage, one-off charges),
        recording each billing as an event.

        - A package is due when its next bill date falls within the window; each
          billing advances that date one step, so a window of three months bills a
          monthly package three times, and billing the same window again finds
          nothing. A bill date before the window that no run covered is stranded:
          the run bills the bill dates in its window and leaves those before it
          owed (`Package.owed`), listed by `stranded`, unless `scope.catch_up`,
          which bills them first, each period its own line.
        - Usage (seed rule) is billed with its package: when the package is due
          (or has ended, so nothing is left behind), all its unbilled usage up to
          the window's end, including usage before the window's start. Usage
          after the window's end waits for a later run.
        - A one-off charge is billed by the first run whose window ends on or
          after its date.
        - Contract penalties (seed rule: whatever period they relate to, also
          before the window's start) once due by the window's end, after
          everything above, so the spend includes this run's lines; each
          contract's fee and shortfall at most once (see `domain.billing.contracts`).
        """
        scope = scope or BillingScope()
        lines: list[InvoiceLine] = []
        for package in self.account.packages.values():
            if not scope.includes(package.terms.category):
                continue
            due = (
                package.due_in(window)
                or package.has_ended
                or (scope.catch_up and bool(package.stranded(window)))
            )
            if scope.packages:
                lines.extend(
                    self._bill_periods(package, run_id, window, posting_date, scope.catch_up)
                )
            if scope.usage and due:
                lines.extend(self._bill_usage(package, run_id, window, posting_date))
        if scope.charges:
            for charge in self.account.charges.values():
                terms = charge.terms
                if charge.billed or terms.charge_date > window.end:
                    continue
                if not scope.includes(terms.category):
                    continue
                line = self._charge_line(terms, run_id, posting_date)
                self._record(ChargeBilled, run_id=run_id, charge_id=terms.charge_id, line=line)
                lines.append(line)
        if scope.contracts:
            lines.extend(self._apply_contract_terms(run_id, window, posting_date, scope))
        return lines

    # Billing, one kind at a time ----------------------------------------------

    def _bill_periods(
        self,
        package: Package,
        run_id: str,
        window: Period,
        posting_date: date,
        scope_catch_up: bool = False,
    ) -> list[InvoiceLine]:
        lines: list[InvoiceLine] = []
        for index in list(package.owed):
            # Owed periods: with catch-up all up to the window's end, else those
            # the window covers.
            day = package.bill_date_of(index)
            if day in window or (scope_catch_up and day <= window.end):
                line = self._bill_period(package, index, run_id, posting_date)
                if line is not None:
                    lines.append(line)
        # Without catch-up, bill dates before the window stay owed (seed: a run bills
        # the bill dates inside its period).
        index = package.next_index if scope_catch_up else package.first_index_in(window)
        while package.bill_date_of(index) <= window.end:
            line = self._bill_period(package, index, run_id, posting_date)
            if line is None:
                break
            lines.append(line)
            index += 1
        return lines

    def _bill_period(
        self, package: Package, index: int, run_id: str, posting_date: date
    ) -> InvoiceLine | None:
        """Bill the `index`-th period (None: no day of it is in the package's term)."""
        terms = package.terms
        period = service_period(terms.anchor, terms.frequency, terms.timing, index)
        used = overlap(period, terms.start_date, terms.end_date)
        if used is None:
            return None
        line = self._period_line(package, run_id, period, used, posting_date)
        self._record(
            PackageBilled,
            run_id=run_id,
            package_id=terms.package_id,
            bill_date=package.bill_date_of(index),
            next_bill_date=package.bill_date_of(max(package.next_index, index + 1)),
            line=line,
        )
        return line

    def _bill_usage(
        self, package: Package, run_id: str, window: Period, posting_date: date
    ) -> list[InvoiceLine]:
        due = [u for u in package.unbilled_usage.values() if u.occurred_on <= window.end]
        if not due:
            return []
        groups: dict[tuple[str, Decimal], list[UsageRecord]] = {}
        for record in sorted(due, key=lambda u: (u.occurred_on, u.usage_id)):
            groups.setdefault((record.description, record.unit_price), []).append(record)
        lines = [
            self._usage_line(package.terms, run_id, records, posting_date)
            for records in groups.values()
        ]
        self._record(
            UsageBilled,
            run_id=run_id,
            package_id=package.terms.package_id,
            usage_ids=tuple(u.usage_id for records in groups.values() for u in records),
            lines=tuple(lines),
        )
        return lines

    def _apply_contract_terms(
        self, run_id: str, window: Period, posting_date: date, scope: BillingScope
    ) -> list[InvoiceLine]:
        lines: list[InvoiceLine] = []
        for contract in self.account.contracts.values():
            terms = contract.terms
            if not scope.includes(terms.category):
                continue
            counts = terms.minimum_spend is not None and (
                PenaltyReason.COMMITMENT_SHORTFALL not in contract.penalties
            )
            due = penalties_due(
                terms,
                contract.terminated_on,
                contract.spend(self.account.billed, self.account.currency)
                if counts
                else Decimal(0),
                window.end,
                self.account.currency,
                applied=contract.penalties,
                spend_complete=counts and self._term_billed(contract),
            )
            for penalty in due:
                line = self._penalty_line(terms, penalty, run_id, posting_date)
                self._record(
                    ContractPenaltyApplied,
                    run_id=run_id,
                    contract_id=terms.contract_id,
                    reason=penalty.reason,
                    amount=penalty.amount,
                    line=line,
                )
                lines.append(line)
        return lines

    def _spend(self, contract: Contract) -> Decimal:
        return contract.spend(self.account.billed, self.account.currency)

    def _term_billed(self, contract: Contract) -> bool:
        """Everything the contract counts within its term has been billed: every
        package period starting in it, its usage and (account contracts) charges.
        An arrears package bills the term's last period after the term ends."""
        terms = contract.terms
        term = Period(terms.start_date, contract.ends_on)
        if terms.package_id is None:
            packages = list(self.account.packages.values())
        else:
            packages = [self.account.packages[terms.package_id]]
        for package in packages:
            if package.terms.start_date > term.end:
                continue
            if not package.has_ended and package.next_service_period().start <= term.end:
                return False
            if package.owed:
                return False  # stranded periods are not billed yet
            if any(u.occurred_on in term for u in package.unbilled_usage.values()):
                return False
        return terms.package_id is not None or not any(
            not c.billed and c.terms.charge_date in term for c in self.account.charges.values()
        )

    # Pricing ------------------------------------------------------------------

    def _rate(self, override: Decimal | None) -> Decimal:
        return self.account.tax_rate if override is None else override

    def _line(self, amount: Decimal, tax_rate: Decimal, **fields: object) -> InvoiceLine:
        return InvoiceLine(
            account_id=self.account.account_id,
            amount=amount,
            currency=self.account.currency,
            tax_rate=tax_rate,
            tax=tax_on(amount, tax_rate, self.account.currency),
            **fields,  # type: ignore[arg-type]
        )

    def _period_line(
        self, package: Package, run_id: str, period: Period, used: Period, posting_date: date
    ) -> InvoiceLine:
        terms = package.terms
        rule = f"recurring:{terms.frequency.value}:{terms.timing.value}"
        if used != period:
            rule += f":prorated:{used.days}/{period.days}"
        amount = prorated(terms.amount, used, period, self.account.currency)
        return self._line(
            amount,
            self._rate(terms.tax_rate),
            line_id=package_line_uuid(self.account.account_id, terms.package_id, period.start),
            run_id=run_id,
            source=f"package:{terms.package_id}",
            description=terms.description,
            service_period_start=used.start,
            service_period_end=used.end,
            # A partial period prints as one unit at its prorated price; the
            # service dates and the rule say which days it covers.
            quantity=Decimal(1),
            unit_amount=amount,
            posting_date=posting_date,
            rule=rule,
            kind=LineKind.RECURRING,
            category=terms.category,
            vat_category=terms.vat_category,
            exemption_reason=terms.exemption_reason,
        )

    def _usage_line(
        self, terms: PackageTerms, run_id: str, records: list[UsageRecord], posting_date: date
    ) -> InvoiceLine:
        first = records[0]
        quantity = sum((u.quantity for u in records), Decimal(0))
        return self._line(
            round_to_currency(quantity * first.unit_price, self.account.currency),
            self._rate(terms.tax_rate),
            line_id=usage_line_uuid(
                self.account.account_id,
                run_id,
                terms.package_id,
                first.description,
                first.unit_price,
            ),
            run_id=run_id,
            source=f"usage:{terms.package_id}",
            description=first.description,
            service_period_start=min(u.occurred_on for u in records),
            service_period_end=max(u.occurred_on for u in records),
            quantity=quantity,
            unit_amount=first.unit_price,
            posting_date=posting_date,
            rule=f"usage:{len(records)}-records",
            kind=LineKind.USAGE,
            category=terms.category,
            vat_category=terms.vat_category,
            exemption_reason=terms.exemption_reason,
        )

    def _penalty_line(
        self, terms: ContractTerms, penalty: PenaltyDue, run_id: str, posting_date: date
    ) -> InvoiceLine:
        what = PENALTY_LABELS[penalty.reason]
        return self._line(
            penalty.amount,
            self._rate(terms.tax_rate),
            line_id=contract_line_uuid(
                self.account.account_id, terms.contract_id, penalty.reason.value
            ),
            run_id=run_id,
            source=f"contract:{terms.contract_id}",
            description=f"{terms.description}: {what}",
            service_period_start=penalty.period.start,
            service_period_end=penalty.period.end,
            quantity=Decimal(1),
            unit_amount=penalty.amount,
            posting_date=posting_date,
            rule=penalty.rule,
            kind=LineKind.PENALTY,
            category=terms.category,
        )

    def _charge_line(self, terms: ChargeTerms, run_id: str, posting_date: date) -> InvoiceLine:
        return self._line(
            terms.amount,
            self._rate(terms.tax_rate),
            line_id=charge_line_uuid(self.account.account_id, terms.charge_id),
            run_id=run_id,
            source=f"charge:{terms.charge_id}",
            description=terms.description,
            service_period_start=terms.charge_date,
            service_period_end=terms.charge_date,
            quantity=Decimal(1),
            unit_amount=terms.amount,
            posting_date=posting_date,
            rule="one-off",
            kind=LineKind.CHARGE,
            category=terms.category,
            vat_category=terms.vat_category,
            exemption_reason=terms.exemption_reason,
        )
