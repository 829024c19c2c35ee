"""The Account aggregate: who is billed, in which currency, for which packages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from pydantic import field_validator

from domain.errors import AccountError
from domain.ids import account_uuid, package_line_uuid
from domain.model import Aggregate, DomainEvent, ValueObject
from domain.money import is_currency, round_to_currency
from domain.periods import (
    Frequency,
    Period,
    Timing,
    bill_date,
    index_of_bill_date,
    service_period,
)


class PackageTerms(ValueObject):
    """What an account subscribed to: a recurring charge on a schedule."""

    package_id: str
    description: str
    amount: Decimal
    frequency: Frequency
    timing: Timing
    start_date: date
    end_date: date | None = None

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("amount must be a finite decimal")
        return value


class InvoiceLine(ValueObject):
    """One priced line, with its provenance (run, source, service period, rule)."""

    line_id: UUID
    account_id: str
    run_id: str
    source: str
    description: str
    service_period_start: date
    service_period_end: date
    quantity: Decimal
    unit_amount: Decimal
    amount: Decimal
    currency: str
    posting_date: date
    rule: str


class AccountOpened(DomainEvent):
    account_id: str
    name: str
    currency: str
    invoice_email: str | None
    bill_group: str


class AccountDetailsChanged(DomainEvent):
    name: str
    invoice_email: str | None
    bill_group: str


class PackageSubscribed(DomainEvent):
    terms: PackageTerms
    next_bill_date: date


class PackageAmended(DomainEvent):
    package_id: str
    description: str
    amount: Decimal
    end_date: date | None


class PackageBilled(DomainEvent):
    run_id: str
    package_id: str
    bill_date: date
    next_bill_date: date
    line: InvoiceLine


@dataclass(slots=True)
class Package:
    terms: PackageTerms
    next_index: int

    @property
    def next_bill_date(self) -> date:
        return bill_date(self.terms.start_date, self.terms.frequency, self.next_index)

    def next_service_period(self) -> Period:
        t = self.terms
        return service_period(t.start_date, t.frequency, t.timing, self.next_index)


def default_first_index(timing: Timing) -> int:
    """Advance bills the first period on the start date; arrears one step later."""
    return 0 if timing is Timing.ADVANCE else 1


class Account(Aggregate):
    kind = "account"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.account_id = ""
        self.name = ""
        self.currency = ""
        self.invoice_email: str | None = None
        self.bill_group = ""
        self.packages: dict[str, Package] = {}

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
    ) -> Account:
        if not account_id.strip():
            raise AccountError("an account needs a non-empty id")
        if not is_currency(currency):
            raise AccountError(f"account {account_id}: unknown currency {currency!r}")
        account = cls(account_uuid(account_id))
        account._trigger(
            AccountOpened,
            at,
            account_id=account_id,
            name=name,
            currency=currency,
            invoice_email=invoice_email,
            bill_group=bill_group,
        )
        return account

    def change_details(
        self, name: str, invoice_email: str | None, bill_group: str, at: datetime
    ) -> None:
        if (name, invoice_email, bill_group) == (self.name, self.invoice_email, self.bill_group):
            return
        self._trigger(
            AccountDetailsChanged, at, name=name, invoice_email=invoice_email, bill_group=bill_group
        )

    def subscribe(self, terms: PackageTerms, next_bill_date: date | None, at: datetime) -> None:
        if terms.package_id in self.packages:
            raise AccountError(f"account {self.account_id} already has package {terms.package_id}")
        if terms.end_date is not None and terms.end_date < terms.start_date:
            raise AccountError(
                f"package {terms.package_id}: end date {terms.end_date} is before "
                f"its start date {terms.start_date}"
            )
        if terms.amount != round_to_currency(terms.amount, self.currency):
            raise AccountError(
                f"package {terms.package_id}: amount {terms.amount} has more decimals "
                f"than {self.currency} allows"
            )
        if next_bill_date is None:
            index = default_first_index(terms.timing)
        else:
            index = index_of_bill_date(terms.start_date, terms.frequency, next_bill_date)
            if index < default_first_index(terms.timing):
                raise AccountError(
                    f"package {terms.package_id}: next bill date {next_bill_date} is before "
                    f"the first bill date of an {terms.timing.value} package"
                )
        first = bill_date(terms.start_date, terms.frequency, index)
        self._trigger(PackageSubscribed, at, terms=terms, next_bill_date=first)

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
        if end_date is not None and end_date < current.start_date:
            raise AccountError(
                f"package {package_id}: end date {end_date} is before "
                f"its start date {current.start_date}"
            )
        if amount != round_to_currency(amount, self.currency):
            raise AccountError(
                f"package {package_id}: amount {amount} has more decimals than "
                f"{self.currency} allows"
            )
        self._trigger(
            PackageAmended,
            at,
            package_id=package_id,
            description=description,
            amount=amount,
            end_date=end_date,
        )

    def bill_packages(
        self, run_id: str, window: Period, posting_date: date, at: datetime
    ) -> list[InvoiceLine]:
        """Bill every package bill date that falls within `window`.

        Each billing advances the package's next bill date by one step, so a
        window of three months bills a monthly package three times, and billing
        the same window again finds nothing due. A bill date before the window
        is left for a run whose window covers it.
        """
        lines: list[InvoiceLine] = []
        for package in self.packages.values():
            while package.next_bill_date in window:
                period = package.next_service_period()
                end_date = package.terms.end_date
                if end_date is not None and period.start > end_date:
                    break
                line = self._price(package, run_id, period, posting_date)
                billed_on = package.next_bill_date
                self._trigger(
                    PackageBilled,
                    at,
                    run_id=run_id,
                    package_id=package.terms.package_id,
                    bill_date=billed_on,
                    next_bill_date=bill_date(
                        package.terms.start_date, package.terms.frequency, package.next_index + 1
                    ),
                    line=line,
                )
                lines.append(line)
        return lines

    # Queries ------------------------------------------------------------------

    def _package(self, package_id: str) -> Package:
        try:
            return self.packages[package_id]
        except KeyError:
            raise AccountError(f"account {self.account_id} has no package {package_id!r}") from None

    def _price(
        self, package: Package, run_id: str, period: Period, posting_date: date
    ) -> InvoiceLine:
        terms = package.terms
        amount = round_to_currency(terms.amount, self.currency)
        return InvoiceLine(
            line_id=package_line_uuid(self.account_id, terms.package_id, period.start),
            account_id=self.account_id,
            run_id=run_id,
            source=f"package:{terms.package_id}",
            description=terms.description,
            service_period_start=period.start,
            service_period_end=period.end,
            quantity=Decimal(1),
            unit_amount=amount,
            amount=amount,
            currency=self.currency,
            posting_date=posting_date,
            rule=f"recurring:{terms.frequency.value}:{terms.timing.value}",
        )

    # Event handlers -----------------------------------------------------------

    def _when_AccountOpened(self, event: AccountOpened) -> None:
        self.account_id = event.account_id
        self.name = event.name
        self.currency = event.currency
        self.invoice_email = event.invoice_email
        self.bill_group = event.bill_group

    def _when_AccountDetailsChanged(self, event: AccountDetailsChanged) -> None:
        self.name = event.name
        self.invoice_email = event.invoice_email
        self.bill_group = event.bill_group

    def _when_PackageSubscribed(self, event: PackageSubscribed) -> None:
        terms = event.terms
        index = index_of_bill_date(terms.start_date, terms.frequency, event.next_bill_date)
        self.packages[terms.package_id] = Package(terms=terms, next_index=index)

    def _when_PackageAmended(self, event: PackageAmended) -> None:
        package = self.packages[event.package_id]
        package.terms = package.terms.model_copy(
            update={
                "description": event.description,
                "amount": event.amount,
                "end_date": event.end_date,
            }
        )

    def _when_PackageBilled(self, event: PackageBilled) -> None:
        self.packages[event.package_id].next_index += 1
