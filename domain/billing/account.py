"""The Account aggregate: who is billed, in which currency, for which packages.

Its billing (what is due in a run's window, priced as lines) is the billing
engine's (`domain.billing.engine`); the checks of its commands are in
`domain.billing.rules`; its events in `domain.billing.events`.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from uuid import UUID

from domain.billing import events
from domain.billing.account_state import AccountState
from domain.billing.buyer import BuyerDetails
from domain.billing.contracts import ContractTerms
from domain.billing.engine import BillingEngine
from domain.billing.lines import InvoiceLine
from domain.billing.rules import (
    check_charge_terms,
    check_contract_terms,
    check_end_date,
    check_minor_units,
    check_package_terms,
    check_tax_rate,
    usage_record,
)
from domain.billing.state import Contract, Package, default_first_index
from domain.billing.terms import BillingScope, ChargeTerms, PackageTerms
from domain.shared.errors import AccountError
from domain.shared.ids import account_uuid
from domain.shared.money import is_currency
from domain.shared.periods import Period, bill_date, index_of_bill_date


class Account(AccountState):
    """An account: its commands check invariants, then record events."""

    # Commands -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        account_id: str,
        name: str,
        currency: str,
        invoice_email: str | None,
        bill_group: str,
        at: datetime,
        tax_rate: Decimal = Decimal(0),
    ) -> Account:
        if not account_id.strip():
            raise AccountError("an account needs a non-empty id")
        if not is_currency(currency):
            raise AccountError(f"account {account_id}: unknown currency {currency!r}")
        check_tax_rate(tax_rate, f"account {account_id}")
        account = cls(account_uuid(account_id))
        account._trigger(
            events.AccountOpened,
            at,
            account_id=account_id,
            name=name,
            currency=currency,
            invoice_email=invoice_email,
            bill_group=bill_group,
            tax_rate=tax_rate,
        )
        return account

    def change_details(
        self,
        name: str,
        invoice_email: str | None,
        bill_group: str,
        at: datetime,
        tax_rate: Decimal | None = None,
    ) -> None:
        rate = self.tax_rate if tax_rate is None else tax_rate
        if (name, invoice_email, bill_group, rate) == (
            self.name,
            self.invoice_email,
            self.bill_group,
            self.tax_rate,
        ):
            return
        check_tax_rate(rate, f"account {self.account_id}")
        self._trigger(
            events.AccountDetailsChanged,
            at,
            name=name,
            invoice_email=invoice_email,
            bill_group=bill_group,
            tax_rate=rate,
        )

    def set_buyer_details(self, details: BuyerDetails, at: datetime) -> None:
        """Set the buyer's address, VAT id and electronic address (unchanged: nothing
        is recorded). Raises AccountError for incoherent details."""
        if details == self.buyer:
            return
        details.check(f"account {self.account_id}")
        self._trigger(events.BuyerDetailsSet, at, details=details)

    def set_bill_day(self, bill_day: int | None, at: datetime) -> None:
        if bill_day == self.bill_day:
            return
        if bill_day is not None and not 1 <= bill_day <= 31:
            raise AccountError(f"account {self.account_id}: bill day {bill_day} is not 1 to 31")
        self._trigger(events.BillDaySet, at, bill_day=bill_day)

    def bill_day_within(self, period: Period) -> bool:
        """Whether the account's bill day falls in `period` (a day 29-31 falls on the
        last day of a shorter month). An account without a bill day has one every run."""
        if self.bill_day is None:
            return True
        year, month = period.start.year, period.start.month
        while date(year, month, 1) <= period.end:
            last = calendar.monthrange(year, month)[1]
            if date(year, month, min(self.bill_day, last)) in period:
                return True
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return False

    def has_package_due(self, period: Period) -> bool:
        """A package's next bill date falls in `period`: the account's bill cycle."""
        return any(p.due_in(period) for p in self.packages.values())

    def stranded(self, window: Period, scope: BillingScope | None = None) -> list[tuple[str, date]]:
        """(package id, bill date) of every package bill date before `window` that
        was never billed (no run covered it): a run over `window` bills them only
        with catch-up. With `scope`, only packages it bills."""
        if scope is not None and not scope.packages:
            return []
        return [
            (package.terms.package_id, day)
            for package in self.packages.values()
            if scope is None or scope.includes(package.terms.category)
            for day in package.stranded(window)
        ]

    def owed(self) -> list[tuple[str, date]]:
        """(package id, bill date) of the bill dates a run passed over, unbilled."""
        return [
            (package.terms.package_id, package.bill_date_of(index))
            for package in self.packages.values()
            for index in package.owed
        ]

    def has_active_package(self, period: Period, scope: BillingScope | None = None) -> bool:
        """A package runs during some day of `period`; with `scope`, only a package
        the run bills counts (a run of other categories does not cover it)."""
        return any(
            p.terms.start_date <= period.end
            and (p.terms.end_date is None or p.terms.end_date >= period.start)
            and (scope is None or scope.includes(p.terms.category))
            for p in self.packages.values()
        )

    def invoiced_within(self, period: Period) -> bool:
        """Whether billing already reached `period`: a line posted on or after its start
        (a run's posting date is its period end unless given), a package bill date on or
        after it billed, or a zero invoice covering it. A zero invoice only ever moves
        this frontier forward: a second run over the same period, or over an earlier
        one, owes the account no zero invoice."""
        if self.zero_invoiced_through is not None and self.zero_invoiced_through >= period.start:
            return True
        if self.last_posting_date is not None and self.last_posting_date >= period.start:
            return True
        for package in self.packages.values():
            t = package.terms
            if package.next_index > default_first_index(t.timing):
                last = bill_date(t.anchor, t.frequency, package.next_index - 1)
                if last >= period.start:
                    return True
        return False

    def issue_zero_invoice(self, run_id: str, period: Period, at: datetime) -> None:
        self._trigger(events.ZeroInvoiceIssued, at, run_id=run_id, period_end=period.end)

    def track_open_invoice(self, invoice_id: UUID | None, at: datetime) -> None:
        if invoice_id != self.open_invoice:
            self._trigger(events.OpenInvoiceChanged, at, invoice_id=invoice_id)

    def hold_invoice(self, invoice_id: UUID, at: datetime) -> None:
        self._trigger(events.InvoiceHeld, at, invoice_id=invoice_id)

    def release_held_invoices(self, run_id: str, at: datetime) -> list[UUID]:
        held = list(self.held_invoices)
        if held:
            self._trigger(events.HeldInvoicesReleased, at, run_id=run_id, invoice_ids=tuple(held))
        return held

    def reopen_run(self, run_id: str, at: datetime) -> bool:
        """Return what `run_id` billed here to unbilled (its run was cancelled with
        reopen); False when it billed nothing here. Refused when a later run billed
        a package after it: rewinding would bill that later period twice."""
        billed = self.runs.get(run_id)
        if billed is None:
            return False
        for package_id, (_, last) in billed.packages.items():
            package = self.packages[package_id]
            if package.next_index != last + 1:
                later = bill_date(package.terms.anchor, package.terms.frequency, last + 1)
                raise AccountError(
                    f"account {self.account_id}: package {package_id} was billed after run "
                    f"{run_id} (bill date {later}); cancel the later run first"
                )
        for package_id, passed in billed.passed_over.items():
            package = self.packages[package_id]
            caught = [i for i in passed if i not in package.owed]
            if caught:
                raise AccountError(
                    f"account {self.account_id}: package {package_id}'s bill date "
                    f"{package.bill_date_of(caught[0])}, which run {run_id} left owed, was "
                    "billed by a later run; cancel the later run first"
                )
        self._trigger(events.RunBillingReopened, at, run_id=run_id)
        return True

    def set_invoicer(self, invoicer: str | None, at: datetime) -> None:
        """Bill this account onto `invoicer`'s invoices (None: onto its own).

        One level only: an invoicer has no invoicer of its own, so a family is one
        invoicer and its members. The application keeps the invoicer's side
        (`add_member` / `remove_member`) in the same transaction.
        """
        if invoicer == self.invoicer:
            return
        if invoicer == self.account_id:
            raise AccountError(f"account {self.account_id} cannot be its own invoicer")
        if invoicer is not None and self.members:
            raise AccountError(
                f"account {self.account_id} is the invoicer of {', '.join(self.members)}; "
                "an invoicer cannot be billed onto another account's invoice"
            )
        self._trigger(events.InvoicerChanged, at, invoicer=invoicer)

    def add_member(self, member: str, at: datetime) -> None:
        if member in self.members:
            return
        if self.invoicer is not None:
            raise AccountError(
                f"account {self.account_id} is billed onto {self.invoicer}'s invoices, "
                f"so it cannot be the invoicer of {member}"
            )
        self._trigger(events.InvoicerMemberAdded, at, member=member)

    def remove_member(self, member: str, at: datetime) -> None:
        if member in self.members:
            self._trigger(events.InvoicerMemberRemoved, at, member=member)

    def subscribe(self, terms: PackageTerms, next_bill_date: date | None, at: datetime) -> None:
        where = f"package {terms.package_id}"
        if terms.package_id in self.packages:
            raise AccountError(f"account {self.account_id} already has package {terms.package_id}")
        check_package_terms(terms, self.currency, where)
        anchor = terms.anchor
        if anchor > terms.start_date or bill_date(anchor, terms.frequency, 1) <= terms.start_date:
            raise AccountError(
                f"{where}: anchor date {anchor} must be on or before the start date "
                f"{terms.start_date}, less than one {terms.frequency.value} period before it"
            )
        if next_bill_date is None:
            index = default_first_index(terms.timing)
        else:
            index = index_of_bill_date(anchor, terms.frequency, next_bill_date)
            if index < default_first_index(terms.timing):
                raise AccountError(
                    f"{where}: next bill date {next_bill_date} is before "
                    f"the first bill date of an {terms.timing.value} package"
                )
        first = bill_date(anchor, terms.frequency, index)
        self._trigger(events.PackageSubscribed, at, terms=terms, next_bill_date=first)

    def amend_package(
        self,
        package_id: str,
        description: str,
        amount: Decimal,
        end_date: date | None,
        at: datetime,
    ) -> None:
        current = self._package(package_id).terms
        if (current.description, current.amount, current.end_date) == (
            description,
            amount,
            end_date,
        ):
            return
        check_end_date(end_date, current.start_date, f"package {package_id}")
        check_minor_units(amount, self.currency, f"package {package_id}: amount {amount}")
        self._trigger(
            events.PackageAmended,
            at,
            package_id=package_id,
            description=description,
            amount=amount,
            end_date=end_date,
        )

    def revise_package(self, terms: PackageTerms, at: datetime) -> None:
        """Replace a package's terms; the same terms again record nothing.

        Applies from the next billing on: periods and usage already billed keep
        the price they were billed at.
        """
        current = self._package(terms.package_id).terms
        if terms == current:
            return
        where = f"package {terms.package_id}"
        for name in ("frequency", "timing", "start_date", "anchor"):
            old, new = getattr(current, name), getattr(terms, name)
            if old != new:
                raise AccountError(
                    f"{where}: {name} cannot change from {old} to {new} "
                    "(it would move periods already billed); add a new package instead"
                )
        check_package_terms(terms, self.currency, where)
        self._trigger(events.PackageRevised, at, terms=terms)

    def record_usage(
        self,
        usage_id: str,
        package_id: str,
        quantity: Decimal,
        occurred_on: date,
        at: datetime,
        unit_price: Decimal | None = None,
        description: str | None = None,
    ) -> bool:
        """Record usage of a package, priced now; an id already recorded records
        nothing (False) when the record is the same, and is refused when it differs."""
        if not usage_id.strip():
            raise AccountError("a usage record needs a non-empty id")
        terms = self._package(package_id).terms
        record = usage_record(usage_id, terms, quantity, occurred_on, unit_price, description)
        known = self.usage.get(usage_id)
        if known is not None:
            if known == record:
                return False
            raise AccountError(
                f"usage {usage_id} is already recorded on account {self.account_id} with other data"
            )
        self._trigger(events.UsageRecorded, at, usage=record)
        return True

    def add_charge(self, terms: ChargeTerms, at: datetime) -> bool:
        """Add a one-off charge; the same charge again records nothing (False), a
        different charge under a known id is refused."""
        check_charge_terms(terms, self.currency)
        known = self.charges.get(terms.charge_id)
        if known is not None:
            if known.terms == terms:
                return False
            raise AccountError(
                f"charge {terms.charge_id} is already on account {self.account_id} with other data"
            )
        self._trigger(events.ChargeAdded, at, charge=terms)
        return True

    def agree_contract(self, terms: ContractTerms, at: datetime) -> bool:
        """Agree a contract on the account or (`terms.package_id`) one of its packages;
        the same terms again record nothing (False), other terms under a known id
        are refused. See `domain.billing.contracts` and docs/contracts.md."""
        where = f"contract {terms.contract_id}"
        if not terms.contract_id.strip():
            raise AccountError("a contract needs a non-empty id")
        known = self.contracts.get(terms.contract_id)
        if known is not None:
            if known.terms == terms:
                return False
            raise AccountError(f"{where} is already on account {self.account_id} with other terms")
        self._check_contract(terms, where)
        self._trigger(events.ContractAgreed, at, terms=terms)
        return True

    def _check_contract(self, terms: ContractTerms, where: str) -> None:
        if terms.package_id is not None:
            self._package(terms.package_id)
        check_contract_terms(terms, self.currency, where)

    def terminate_contract(self, contract_id: str, on: date, at: datetime) -> bool:
        """Record that a contract ends on `on` (its last day); the same date again
        records nothing (False), another date is refused.

        The contract's package is not changed: the operator ends the package
        separately (its end date), as service and contract can end apart.
        """
        contract = self._contract(contract_id)
        if contract.terminated_on is not None:
            if contract.terminated_on == on:
                return False
            raise AccountError(
                f"contract {contract_id} is already terminated on {contract.terminated_on}"
            )
        if on < contract.terms.start_date:
            raise AccountError(
                f"contract {contract_id}: termination date {on} is before "
                f"its start date {contract.terms.start_date}"
            )
        self._trigger(events.ContractTerminated, at, contract_id=contract_id, terminated_on=on)
        return True

    def contract_spend(self, contract_id: str) -> Decimal:
        """What was billed so far within the contract's term (up to its end) that
        the contract counts: its package's recurring and usage lines, or for an
        account contract every line (credits included, penalties not)."""
        return self._contract(contract_id).spend(self.billed, self.currency)

    def bill(
        self,
        run_id: str,
        window: Period,
        posting_date: date,
        at: datetime,
        scope: BillingScope | None = None,
    ) -> list[InvoiceLine]:
        """Bill what is due in `window` (`BillingEngine.bill` says what that is),
        recording each billing at `at`."""
        # partial, not a closure: one Python frame less per billed event.
        record = partial(self._trigger, at=at)
        return BillingEngine(self, record).bill(run_id, window, posting_date, scope)

    def bill_packages(
        self, run_id: str, window: Period, posting_date: date, at: datetime
    ) -> list[InvoiceLine]:
        """Bill only the package periods due in `window` (see `bill`)."""
        scope = BillingScope(packages=True, usage=False, charges=False, contracts=False)
        return self.bill(run_id, window, posting_date, at, scope)

    def _contract(self, contract_id: str) -> Contract:
        try:
            return self.contracts[contract_id]
        except KeyError:
            raise AccountError(
                f"account {self.account_id} has no contract {contract_id!r}"
            ) from None

    def _package(self, package_id: str) -> Package:
        try:
            return self.packages[package_id]
        except KeyError:
            raise AccountError(f"account {self.account_id} has no package {package_id!r}") from None
