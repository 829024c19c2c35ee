"""The Account aggregate: who is billed, in which currency, for which packages."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from pydantic import field_validator

from domain.billing.contracts import (
    BilledItem,
    ContractTerms,
    PenaltyDue,
    PenaltyReason,
    contract_end,
    penalties_due,
    spend_within,
)
from domain.billing.lines import (
    DEFAULT_CHARGE_CATEGORY,
    DEFAULT_PACKAGE_CATEGORY,
    InvoiceLine,
    LineKind,
)
from domain.billing.pricing import overlap, prorated, tax_on
from domain.shared.errors import AccountError
from domain.shared.ids import (
    account_uuid,
    charge_line_uuid,
    contract_line_uuid,
    package_line_uuid,
    usage_line_uuid,
)
from domain.shared.inputs import MAX_MAGNITUDE
from domain.shared.model import Aggregate, DomainEvent, ValueObject
from domain.shared.money import is_currency, round_to_currency
from domain.shared.periods import (
    Frequency,
    Period,
    Timing,
    bill_date,
    index_of_bill_date,
    service_period,
)

__all__ = ["InvoiceLine", "LineKind"]  # re-exported: lines were first defined here

MAX_TERM_MONTHS = 1200
PENALTY_LABELS = {
    PenaltyReason.EARLY_TERMINATION: "early termination fee",
    PenaltyReason.COMMITMENT_SHORTFALL: "minimum spend shortfall",
}


def _finite(value: Decimal | None) -> Decimal | None:
    if value is not None and not value.is_finite():
        raise ValueError("must be a finite decimal")
    return value


class PackageTerms(ValueObject):
    """What an account subscribed to: a recurring charge on a schedule."""

    package_id: str
    description: str
    amount: Decimal
    frequency: Frequency
    timing: Timing
    start_date: date
    end_date: date | None = None
    anchor_date: date | None = None
    """The date the schedule counts from; default the start date. An anchor
    before the start (e.g. the 1st of the month for a package starting on the
    15th) aligns the package to a bill day and makes its first period partial."""
    category: str = DEFAULT_PACKAGE_CATEGORY
    tax_rate: Decimal | None = None
    """Percent; None: the account's rate."""
    usage_rate: Decimal | None = None
    """Price per unit of usage recorded without a price of its own."""

    _check = field_validator("amount", "tax_rate", "usage_rate")(_finite)

    @property
    def anchor(self) -> date:
        return self.start_date if self.anchor_date is None else self.anchor_date


class UsageRecord(ValueObject):
    """A quantity of a package's service used on one day, priced when recorded."""

    usage_id: str
    package_id: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    occurred_on: date

    _check = field_validator("quantity", "unit_price")(_finite)


class ChargeTerms(ValueObject):
    """A one-off charge (or, negative, a credit), billed once on or after its date."""

    charge_id: str
    description: str
    amount: Decimal
    charge_date: date
    category: str = DEFAULT_CHARGE_CATEGORY
    tax_rate: Decimal | None = None
    """Percent; None: the account's rate."""

    _check = field_validator("amount", "tax_rate")(_finite)


class BillingScope(ValueObject):
    """What a run bills (its settings `bill_packages`, `bill_usage`, `bill_charges`,
    `run_contracts`)
    and, when `categories` is not empty, only packages and charges of those categories."""

    packages: bool = True
    usage: bool = True
    charges: bool = True
    contracts: bool = True
    categories: tuple[str, ...] = ()
    catch_up: bool = False
    """Also bill stranded package bill dates (before the window), each period its
    own line (the run setting `catch_up`)."""

    def includes(self, category: str) -> bool:
        return not self.categories or category in self.categories


class AccountOpened(DomainEvent):
    account_id: str
    name: str
    currency: str
    invoice_email: str | None
    bill_group: str
    tax_rate: Decimal = Decimal(0)


class AccountDetailsChanged(DomainEvent):
    name: str
    invoice_email: str | None
    bill_group: str
    tax_rate: Decimal = Decimal(0)


class BillDaySet(DomainEvent):
    """The day of the month the account's cycle turns (None: every run is one)."""

    bill_day: int | None


class OpenInvoiceChanged(DomainEvent):
    """The invoice that collects the account's (or family's) lines; None: none open."""

    invoice_id: UUID | None


class ZeroInvoiceIssued(DomainEvent):
    """The account had an active package but nothing billed in the run's period, and
    got an invoice of zero (its bill group's `zero_invoices`)."""

    run_id: str
    period_end: date


class InvoiceHeld(DomainEvent):
    """A closed invoice waits for a run that reaches the bill day to be released."""

    invoice_id: UUID


class HeldInvoicesReleased(DomainEvent):
    run_id: str
    invoice_ids: tuple[UUID, ...]


class RunBillingReopened(DomainEvent):
    """The run was cancelled with reopen: what it billed is unbilled again (package
    periods, usage, charges, penalties), for a later run to bill once."""

    run_id: str


class InvoicerChanged(DomainEvent):
    """The account's lines go onto `invoicer`'s invoice from now on (None: its own)."""

    invoicer: str | None


class InvoicerMemberAdded(DomainEvent):
    """On the invoicer: `member` is billed onto this account's invoices."""

    member: str


class InvoicerMemberRemoved(DomainEvent):
    member: str


class PackageSubscribed(DomainEvent):
    terms: PackageTerms
    next_bill_date: date


class PackageAmended(DomainEvent):
    package_id: str
    description: str
    amount: Decimal
    end_date: date | None


class PackageRevised(DomainEvent):
    """New terms for a package: anything but its schedule (frequency, timing,
    start and anchor dates), which would change periods already billed."""

    terms: PackageTerms


class PackageBilled(DomainEvent):
    run_id: str
    package_id: str
    bill_date: date
    next_bill_date: date
    line: InvoiceLine


class UsageRecorded(DomainEvent):
    usage: UsageRecord


class UsageBilled(DomainEvent):
    """A package's unbilled usage up to the run's period end, as summed lines."""

    run_id: str
    package_id: str
    usage_ids: tuple[str, ...]
    lines: tuple[InvoiceLine, ...]


class ChargeAdded(DomainEvent):
    charge: ChargeTerms


class ChargeBilled(DomainEvent):
    run_id: str
    charge_id: str
    line: InvoiceLine


class ContractAgreed(DomainEvent):
    terms: ContractTerms


class ContractTerminated(DomainEvent):
    contract_id: str
    terminated_on: date
    """The contract's last day."""


class ContractPenaltyApplied(DomainEvent):
    """An early-termination fee or a commitment shortfall, billed once per contract."""

    run_id: str
    contract_id: str
    reason: PenaltyReason
    amount: Decimal
    line: InvoiceLine


@dataclass(slots=True)
class Package:
    terms: PackageTerms
    next_index: int
    unbilled_usage: dict[str, UsageRecord] = field(default_factory=dict)
    owed: list[int] = field(default_factory=list)
    """Schedule indexes a run passed over, their bill dates being before its window
    (no run covered them): unbilled, stranded, until a run with catch-up bills
    them. Oldest first."""

    @property
    def next_bill_date(self) -> date:
        return bill_date(self.terms.anchor, self.terms.frequency, self.next_index)

    def next_service_period(self) -> Period:
        t = self.terms
        return service_period(t.anchor, t.frequency, t.timing, self.next_index)

    def bill_date_of(self, index: int) -> date:
        return bill_date(self.terms.anchor, self.terms.frequency, index)

    def bills(self, index: int) -> bool:
        """The `index`-th period has days within the package's term (else nothing
        is billed for it: the package has ended)."""
        t = self.terms
        period = service_period(t.anchor, t.frequency, t.timing, index)
        return overlap(period, t.start_date, t.end_date) is not None

    def first_index_in(self, window: Period) -> int:
        """The first index from the next one whose bill date is not before `window`."""
        index = self.next_index
        while self.bill_date_of(index) < window.start:
            index += 1
        return index

    def stranded(self, window: Period) -> list[date]:
        """Bill dates not billed that a run over `window` does not bill by default:
        those passed over before (`owed`) and those from the next bill date up to
        the window's start, each with days in the package's term."""
        if not self.owed and self.next_bill_date >= window.start:
            return []  # the common case, checked for every package in every run
        found = [d for d in map(self.bill_date_of, self.owed) if d < window.start]
        index = self.next_index
        while self.bill_date_of(index) < window.start and self.bills(index):
            found.append(self.bill_date_of(index))
            index += 1
        return found

    def due_in(self, window: Period) -> bool:
        """A bill date not billed yet falls in `window`."""
        return self.bill_date_of(self.first_index_in(window)) in window or any(
            self.bill_date_of(i) in window for i in self.owed
        )

    @property
    def has_ended(self) -> bool:
        """Every period up to its end date is billed: nothing recurring is left."""
        end = self.terms.end_date
        return end is not None and self.next_service_period().start > end


@dataclass(slots=True)
class RunBilling:
    """What one run billed on the account, so that cancelling the run with reopen
    can return it to unbilled (`reopen_run`)."""

    packages: dict[str, tuple[int, int]] = field(default_factory=dict)
    """package id -> (first, last) schedule index the run billed."""
    usage_ids: list[str] = field(default_factory=list)
    charge_ids: list[str] = field(default_factory=list)
    penalties: list[tuple[str, str]] = field(default_factory=list)
    line_keys: set[str] = field(default_factory=set)
    """The billed-item keys the run added (contract spend)."""
    passed_over: dict[str, list[int]] = field(default_factory=dict)
    """package id -> indexes the run left owed (bill dates before its window)."""
    caught_up: list[tuple[str, int]] = field(default_factory=list)
    """(package id, index) of owed periods the run billed (catch-up)."""
    zero_invoiced_before: date | None = None
    zero_invoice: bool = False


@dataclass(slots=True)
class Charge:
    terms: ChargeTerms
    billed: bool = False


@dataclass(slots=True)
class Contract:
    terms: ContractTerms
    terminated_on: date | None = None
    penalties: dict[PenaltyReason, InvoiceLine] = field(default_factory=dict)
    """The penalty lines applied, by reason (each reason at most once)."""

    @property
    def ends_on(self) -> date:
        """The term's last day, or the termination date if earlier."""
        return contract_end(self.terms, self.terminated_on)


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
        self.tax_rate = Decimal(0)
        self.packages: dict[str, Package] = {}
        self.usage: dict[str, UsageRecord] = {}
        """Every usage record ever recorded, by id (billed or not): ids are unique."""
        self.charges: dict[str, Charge] = {}
        self.contracts: dict[str, Contract] = {}
        self.billed: list[BilledItem] = []
        """Every billed line (usage: every billed record), as contracts count spend."""
        self.bill_day: int | None = None
        self.open_invoice: UUID | None = None
        """The invoice collecting this account's (and its members') lines until it closes."""
        self.zero_invoiced_through: date | None = None
        self.last_posting_date: date | None = None
        """The posting date of the last line billed (a run's, by default its period end)."""
        self.held_invoices: list[UUID] = []
        self.runs: dict[str, RunBilling] = {}
        """What each run billed here, for reopening a cancelled run."""
        """Closed invoices waiting for a run that reaches the bill day."""
        self.invoicer: str | None = None
        """The account whose invoice carries this account's lines (None: its own)."""
        self.members: list[str] = []
        """Accounts billed onto this account's invoices, in the order they joined."""

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
        _check_tax_rate(tax_rate, f"account {account_id}")
        account = cls(account_uuid(account_id))
        account._trigger(
            AccountOpened,
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
        _check_tax_rate(rate, f"account {self.account_id}")
        self._trigger(
            AccountDetailsChanged,
            at,
            name=name,
            invoice_email=invoice_email,
            bill_group=bill_group,
            tax_rate=rate,
        )

    def set_bill_day(self, bill_day: int | None, at: datetime) -> None:
        if bill_day == self.bill_day:
            return
        if bill_day is not None and not 1 <= bill_day <= 31:
            raise AccountError(f"account {self.account_id}: bill day {bill_day} is not 1 to 31")
        self._trigger(BillDaySet, at, bill_day=bill_day)

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
        self._trigger(ZeroInvoiceIssued, at, run_id=run_id, period_end=period.end)

    def track_open_invoice(self, invoice_id: UUID | None, at: datetime) -> None:
        if invoice_id != self.open_invoice:
            self._trigger(OpenInvoiceChanged, at, invoice_id=invoice_id)

    def hold_invoice(self, invoice_id: UUID, at: datetime) -> None:
        self._trigger(InvoiceHeld, at, invoice_id=invoice_id)

    def release_held_invoices(self, run_id: str, at: datetime) -> list[UUID]:
        held = list(self.held_invoices)
        if held:
            self._trigger(HeldInvoicesReleased, at, run_id=run_id, invoice_ids=tuple(held))
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
        self._trigger(RunBillingReopened, at, run_id=run_id)
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
        self._trigger(InvoicerChanged, at, invoicer=invoicer)

    def add_member(self, member: str, at: datetime) -> None:
        if member in self.members:
            return
        if self.invoicer is not None:
            raise AccountError(
                f"account {self.account_id} is billed onto {self.invoicer}'s invoices, "
                f"so it cannot be the invoicer of {member}"
            )
        self._trigger(InvoicerMemberAdded, at, member=member)

    def remove_member(self, member: str, at: datetime) -> None:
        if member in self.members:
            self._trigger(InvoicerMemberRemoved, at, member=member)

    def subscribe(self, terms: PackageTerms, next_bill_date: date | None, at: datetime) -> None:
        where = f"package {terms.package_id}"
        if terms.package_id in self.packages:
            raise AccountError(f"account {self.account_id} already has package {terms.package_id}")
        self._check_terms(terms, where)
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
        self._trigger(PackageSubscribed, at, terms=terms, next_bill_date=first)

    def _check_terms(self, terms: PackageTerms, where: str) -> None:
        """What any package's terms must satisfy, new or revised."""
        if terms.end_date is not None and terms.end_date < terms.start_date:
            raise AccountError(
                f"{where}: end date {terms.end_date} is before its start date {terms.start_date}"
            )
        if terms.amount != round_to_currency(terms.amount, self.currency):
            raise AccountError(
                f"{where}: amount {terms.amount} has more decimals than {self.currency} allows"
            )
        if terms.tax_rate is not None:
            _check_tax_rate(terms.tax_rate, where)
        if terms.usage_rate is not None and terms.usage_rate < 0:
            raise AccountError(f"{where}: usage rate {terms.usage_rate} is negative")

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
        self._check_terms(terms, where)
        self._trigger(PackageRevised, at, terms=terms)

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
        where = f"usage {usage_id}"
        if not usage_id.strip():
            raise AccountError("a usage record needs a non-empty id")
        terms = self._package(package_id).terms
        price = terms.usage_rate if unit_price is None else unit_price
        if price is None:
            raise AccountError(
                f"{where}: no unit price given and package {package_id} has no usage rate"
            )
        if not quantity.is_finite() or not price.is_finite():
            raise AccountError(f"{where}: quantity and unit price must be finite decimals")
        if abs(quantity * price) >= MAX_MAGNITUDE:
            # Each below the input limit, their product may not be: a line amount
            # beyond it could not be converted or rounded later, parking the account.
            raise AccountError(
                f"{where}: {quantity} x {price} is beyond what billrun bills "
                "(an amount below 1000000000000, 10^12)"
            )
        if occurred_on < terms.start_date or (
            terms.end_date is not None and occurred_on > terms.end_date
        ):
            ends = "" if terms.end_date is None else f" to {terms.end_date}"
            raise AccountError(
                f"{where}: occurred on {occurred_on}, outside package {package_id} "
                f"({terms.start_date}{ends})"
            )
        record = UsageRecord(
            usage_id=usage_id,
            package_id=package_id,
            description=description or terms.description,
            quantity=quantity,
            unit_price=price,
            occurred_on=occurred_on,
        )
        known = self.usage.get(usage_id)
        if known is not None:
            if known == record:
                return False
            raise AccountError(
                f"{where} is already recorded on account {self.account_id} with other data"
            )
        self._trigger(UsageRecorded, at, usage=record)
        return True

    def add_charge(self, terms: ChargeTerms, at: datetime) -> bool:
        """Add a one-off charge; the same charge again records nothing (False), a
        different charge under a known id is refused."""
        where = f"charge {terms.charge_id}"
        if not terms.charge_id.strip():
            raise AccountError("a charge needs a non-empty id")
        if terms.amount != round_to_currency(terms.amount, self.currency):
            raise AccountError(
                f"{where}: amount {terms.amount} has more decimals than {self.currency} allows"
            )
        if terms.tax_rate is not None:
            _check_tax_rate(terms.tax_rate, where)
        known = self.charges.get(terms.charge_id)
        if known is not None:
            if known.terms == terms:
                return False
            raise AccountError(f"{where} is already on account {self.account_id} with other data")
        self._trigger(ChargeAdded, at, charge=terms)
        return True

    def agree_contract(self, terms: ContractTerms, at: datetime) -> bool:
        """Agree a contract on the account or (`terms.package_id`) one of its packages;
        the same terms again record nothing (False), other terms under a known id
        are refused. See `domain.contracts` and docs/contracts.md."""
        where = f"contract {terms.contract_id}"
        if not terms.contract_id.strip():
            raise AccountError("a contract needs a non-empty id")
        known = self.contracts.get(terms.contract_id)
        if known is not None:
            if known.terms == terms:
                return False
            raise AccountError(f"{where} is already on account {self.account_id} with other terms")
        self._check_contract(terms, where)
        self._trigger(ContractAgreed, at, terms=terms)
        return True

    def _check_contract(self, terms: ContractTerms, where: str) -> None:
        if terms.package_id is not None:
            self._package(terms.package_id)
        if not 1 <= terms.term_months <= MAX_TERM_MONTHS:
            raise AccountError(
                f"{where}: a minimum term of {terms.term_months} months; "
                f"it must be 1 to {MAX_TERM_MONTHS}"
            )
        if not terms.description.strip():
            raise AccountError(f"{where}: needs a description")
        if not terms.category.strip():
            raise AccountError(f"{where}: needs a category")
        if terms.early_termination_fee is None and terms.minimum_spend is None:
            raise AccountError(f"{where}: needs an early-termination fee, a minimum spend or both")
        for name, value in (
            ("early-termination fee", terms.early_termination_fee),
            ("minimum spend", terms.minimum_spend),
        ):
            if value is None:
                continue
            if value <= 0:
                raise AccountError(f"{where}: {name} {value} must be positive")
            if value != round_to_currency(value, self.currency):
                raise AccountError(
                    f"{where}: {name} {value} has more decimals than {self.currency} allows"
                )
        if terms.tax_rate is not None:
            _check_tax_rate(terms.tax_rate, where)

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
        self._trigger(ContractTerminated, at, contract_id=contract_id, terminated_on=on)
        return True

    def contract_spend(self, contract_id: str) -> Decimal:
        """What was billed so far within the contract's term (up to its end) that
        the contract counts: its package's recurring and usage lines, or for an
        account contract every line (credits included, penalties not)."""
        contract = self._contract(contract_id)
        term = Period(contract.terms.start_date, contract.ends_on)
        return spend_within(self.billed, contract.terms.package_id, term, self.currency)

    def bill(
        self,
        run_id: str,
        window: Period,
        posting_date: date,
        at: datetime,
        scope: BillingScope | None = None,
    ) -> list[InvoiceLine]:
        """Bill what is due in `window`: package periods, usage, one-off charges.

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
          contract's fee and shortfall at most once (see `domain.contracts`).
        """
        scope = scope or BillingScope()
        lines: list[InvoiceLine] = []
        for package in self.packages.values():
            if not scope.includes(package.terms.category):
                continue
            due = (
                package.due_in(window)
                or package.has_ended
                or (scope.catch_up and bool(package.stranded(window)))
            )
            if scope.packages:
                lines.extend(
                    self._bill_periods(package, run_id, window, posting_date, at, scope.catch_up)
                )
            if scope.usage and due:
                lines.extend(self._bill_usage(package, run_id, window, posting_date, at))
        if scope.charges:
            for charge in self.charges.values():
                terms = charge.terms
                if charge.billed or terms.charge_date > window.end:
                    continue
                if not scope.includes(terms.category):
                    continue
                line = self._charge_line(terms, run_id, posting_date)
                self._trigger(ChargeBilled, at, run_id=run_id, charge_id=terms.charge_id, line=line)
                lines.append(line)
        if scope.contracts:
            lines.extend(self._apply_contract_terms(run_id, window, posting_date, at, scope))
        return lines

    def bill_packages(
        self, run_id: str, window: Period, posting_date: date, at: datetime
    ) -> list[InvoiceLine]:
        """Bill only the package periods due in `window` (see `bill`)."""
        scope = BillingScope(packages=True, usage=False, charges=False, contracts=False)
        return self.bill(run_id, window, posting_date, at, scope)

    # Billing, one kind at a time ----------------------------------------------

    def _bill_periods(
        self,
        package: Package,
        run_id: str,
        window: Period,
        posting_date: date,
        at: datetime,
        scope_catch_up: bool = False,
    ) -> list[InvoiceLine]:
        lines: list[InvoiceLine] = []
        for index in list(package.owed):
            # Owed periods: with catch-up all up to the window's end, else those
            # the window covers.
            day = package.bill_date_of(index)
            if day in window or (scope_catch_up and day <= window.end):
                line = self._bill_period(package, index, run_id, posting_date, at)
                if line is not None:
                    lines.append(line)
        # Without catch-up, bill dates before the window stay owed (seed: a run bills
        # the bill dates inside its period).
        index = package.next_index if scope_catch_up else package.first_index_in(window)
        while package.bill_date_of(index) <= window.end:
            line = self._bill_period(package, index, run_id, posting_date, at)
            if line is None:
                break
            lines.append(line)
            index += 1
        return lines

    def _bill_period(
        self, package: Package, index: int, run_id: str, posting_date: date, at: datetime
    ) -> InvoiceLine | None:
        """Bill the `index`-th period (None: no day of it is in the package's term)."""
        terms = package.terms
        period = service_period(terms.anchor, terms.frequency, terms.timing, index)
        used = overlap(period, terms.start_date, terms.end_date)
        if used is None:
            return None
        line = self._period_line(package, run_id, period, used, posting_date)
        self._trigger(
            PackageBilled,
            at,
            run_id=run_id,
            package_id=terms.package_id,
            bill_date=package.bill_date_of(index),
            next_bill_date=package.bill_date_of(max(package.next_index, index + 1)),
            line=line,
        )
        return line

    def _bill_usage(
        self, package: Package, run_id: str, window: Period, posting_date: date, at: datetime
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
        self._trigger(
            UsageBilled,
            at,
            run_id=run_id,
            package_id=package.terms.package_id,
            usage_ids=tuple(u.usage_id for records in groups.values() for u in records),
            lines=tuple(lines),
        )
        return lines

    def _apply_contract_terms(
        self, run_id: str, window: Period, posting_date: date, at: datetime, scope: BillingScope
    ) -> list[InvoiceLine]:
        lines: list[InvoiceLine] = []
        for contract in self.contracts.values():
            terms = contract.terms
            if not scope.includes(terms.category):
                continue
            counts = terms.minimum_spend is not None and (
                PenaltyReason.COMMITMENT_SHORTFALL not in contract.penalties
            )
            due = penalties_due(
                terms,
                contract.terminated_on,
                self.contract_spend(terms.contract_id) if counts else Decimal(0),
                window.end,
                self.currency,
                applied=contract.penalties,
                spend_complete=counts and self._term_billed(contract),
            )
            for penalty in due:
                line = self._penalty_line(terms, penalty, run_id, posting_date)
                self._trigger(
                    ContractPenaltyApplied,
                    at,
                    run_id=run_id,
                    contract_id=terms.contract_id,
                    reason=penalty.reason,
                    amount=penalty.amount,
                    line=line,
                )
                lines.append(line)
        return lines

    def _term_billed(self, contract: Contract) -> bool:
        """Everything the contract counts within its term has been billed: every
        package period starting in it, its usage and (account contracts) charges.
        An arrears package bills the term's last period after the term ends."""
        terms = contract.terms
        term = Period(terms.start_date, contract.ends_on)
        if terms.package_id is None:
            packages = list(self.packages.values())
        else:
            packages = [self._package(terms.package_id)]
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
            not c.billed and c.terms.charge_date in term for c in self.charges.values()
        )

    def _contract(self, contract_id: str) -> Contract:
        try:
            return self.contracts[contract_id]
        except KeyError:
            raise AccountError(
                f"account {self.account_id} has no contract {contract_id!r}"
            ) from None

    # Pricing ------------------------------------------------------------------

    def _package(self, package_id: str) -> Package:
        try:
            return self.packages[package_id]
        except KeyError:
            raise AccountError(f"account {self.account_id} has no package {package_id!r}") from None

    def _rate(self, override: Decimal | None) -> Decimal:
        return self.tax_rate if override is None else override

    def _line(self, amount: Decimal, tax_rate: Decimal, **fields: object) -> InvoiceLine:
        return InvoiceLine(
            account_id=self.account_id,
            amount=amount,
            currency=self.currency,
            tax_rate=tax_rate,
            tax=tax_on(amount, tax_rate, self.currency),
            **fields,  # type: ignore[arg-type]
        )

    def _period_line(
        self, package: Package, run_id: str, period: Period, used: Period, posting_date: date
    ) -> InvoiceLine:
        terms = package.terms
        rule = f"recurring:{terms.frequency.value}:{terms.timing.value}"
        if used != period:
            rule += f":prorated:{used.days}/{period.days}"
        amount = prorated(terms.amount, used, period, self.currency)
        return self._line(
            amount,
            self._rate(terms.tax_rate),
            line_id=package_line_uuid(self.account_id, terms.package_id, period.start),
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
        )

    def _usage_line(
        self, terms: PackageTerms, run_id: str, records: list[UsageRecord], posting_date: date
    ) -> InvoiceLine:
        first = records[0]
        quantity = sum((u.quantity for u in records), Decimal(0))
        return self._line(
            round_to_currency(quantity * first.unit_price, self.currency),
            self._rate(terms.tax_rate),
            line_id=usage_line_uuid(
                self.account_id, run_id, terms.package_id, first.description, first.unit_price
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
        )

    def _penalty_line(
        self, terms: ContractTerms, penalty: PenaltyDue, run_id: str, posting_date: date
    ) -> InvoiceLine:
        what = PENALTY_LABELS[penalty.reason]
        return self._line(
            penalty.amount,
            self._rate(terms.tax_rate),
            line_id=contract_line_uuid(self.account_id, terms.contract_id, penalty.reason.value),
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
            line_id=charge_line_uuid(self.account_id, terms.charge_id),
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
        )

    # Event handlers -----------------------------------------------------------

    def _when_AccountOpened(self, event: AccountOpened) -> None:
        self.account_id = event.account_id
        self.name = event.name
        self.currency = event.currency
        self.invoice_email = event.invoice_email
        self.bill_group = event.bill_group
        self.tax_rate = event.tax_rate

    def _when_AccountDetailsChanged(self, event: AccountDetailsChanged) -> None:
        self.name = event.name
        self.invoice_email = event.invoice_email
        self.bill_group = event.bill_group
        self.tax_rate = event.tax_rate

    def _when_BillDaySet(self, event: BillDaySet) -> None:
        self.bill_day = event.bill_day

    def _when_OpenInvoiceChanged(self, event: OpenInvoiceChanged) -> None:
        self.open_invoice = event.invoice_id

    def _when_ZeroInvoiceIssued(self, event: ZeroInvoiceIssued) -> None:
        run = self._run(event.run_id)
        run.zero_invoice, run.zero_invoiced_before = True, self.zero_invoiced_through
        self.zero_invoiced_through = event.period_end

    def _when_InvoiceHeld(self, event: InvoiceHeld) -> None:
        self.held_invoices.append(event.invoice_id)

    def _when_HeldInvoicesReleased(self, event: HeldInvoicesReleased) -> None:
        self.held_invoices = [i for i in self.held_invoices if i not in event.invoice_ids]

    def _run(self, run_id: str) -> RunBilling:
        return self.runs.setdefault(run_id, RunBilling())

    def _when_RunBillingReopened(self, event: RunBillingReopened) -> None:
        billed = self.runs.pop(event.run_id)
        for package_id, (first, _) in billed.packages.items():
            self.packages[package_id].next_index = first
        for package_id, passed in billed.passed_over.items():
            owed = self.packages[package_id].owed
            owed[:] = [i for i in owed if i not in passed]
        for package_id, index in billed.caught_up:
            self.packages[package_id].owed.append(index)
            self.packages[package_id].owed.sort()
        for usage_id in billed.usage_ids:
            record = self.usage[usage_id]
            self.packages[record.package_id].unbilled_usage[usage_id] = record
        for charge_id in billed.charge_ids:
            self.charges[charge_id].billed = False
        for contract_id, reason in billed.penalties:
            self.contracts[contract_id].penalties.pop(PenaltyReason(reason), None)
        prefix = f"usage:{event.run_id}:"
        self.billed = [
            item
            for item in self.billed
            if item.line not in billed.line_keys and not item.line.startswith(prefix)
        ]
        if billed.zero_invoice:
            self.zero_invoiced_through = billed.zero_invoiced_before
        # The frontier of zero invoices falls back with what was unbilled.
        self.last_posting_date = None

    def _when_InvoicerChanged(self, event: InvoicerChanged) -> None:
        self.invoicer = event.invoicer

    def _when_InvoicerMemberAdded(self, event: InvoicerMemberAdded) -> None:
        self.members.append(event.member)

    def _when_InvoicerMemberRemoved(self, event: InvoicerMemberRemoved) -> None:
        self.members.remove(event.member)

    def _when_PackageSubscribed(self, event: PackageSubscribed) -> None:
        terms = event.terms
        index = index_of_bill_date(terms.anchor, terms.frequency, event.next_bill_date)
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

    def _when_PackageRevised(self, event: PackageRevised) -> None:
        self.packages[event.terms.package_id].terms = event.terms

    def _when_PackageBilled(self, event: PackageBilled) -> None:
        package = self.packages[event.package_id]
        run = self._run(event.run_id)
        run.line_keys.add(str(event.line.line_id))
        index = package.next_index
        if event.bill_date != package.next_bill_date:
            # Events before stranded bill dates were tracked always bill the next one.
            t = package.terms
            index = index_of_bill_date(t.anchor, t.frequency, event.bill_date)
        if index < package.next_index:
            package.owed.remove(index)  # an owed period, caught up
            run.caught_up.append((event.package_id, index))
        else:
            passed = list(range(package.next_index, index))
            package.owed.extend(passed)
            if passed:
                run.passed_over.setdefault(event.package_id, []).extend(passed)
            first, _ = run.packages.get(event.package_id, (package.next_index, index))
            run.packages[event.package_id] = (first, index)
            package.next_index = index + 1
        line = event.line
        self.last_posting_date = line.posting_date
        self.billed.append(
            BilledItem(str(line.line_id), event.package_id, line.service_period_start, line.amount)
        )

    def _when_UsageRecorded(self, event: UsageRecorded) -> None:
        usage = event.usage
        self.usage[usage.usage_id] = usage
        self.packages[usage.package_id].unbilled_usage[usage.usage_id] = usage

    def _when_UsageBilled(self, event: UsageBilled) -> None:
        self._run(event.run_id).usage_ids.extend(event.usage_ids)
        if event.lines:
            self.last_posting_date = event.lines[0].posting_date
        unbilled = self.packages[event.package_id].unbilled_usage
        for usage_id in event.usage_ids:
            record = unbilled.pop(usage_id)
            self.billed.append(
                BilledItem(
                    # Records of one run, package and description at one price were one line.
                    f"usage:{event.run_id}:{event.package_id}:{record.description}",
                    event.package_id,
                    record.occurred_on,
                    quantity=record.quantity,
                    unit_price=record.unit_price,
                )
            )

    def _when_ChargeAdded(self, event: ChargeAdded) -> None:
        self.charges[event.charge.charge_id] = Charge(terms=event.charge)

    def _when_ChargeBilled(self, event: ChargeBilled) -> None:
        run = self._run(event.run_id)
        run.charge_ids.append(event.charge_id)
        run.line_keys.add(str(event.line.line_id))
        self.charges[event.charge_id].billed = True
        line = event.line
        self.last_posting_date = line.posting_date
        self.billed.append(
            BilledItem(str(line.line_id), None, line.service_period_start, line.amount)
        )

    def _when_ContractAgreed(self, event: ContractAgreed) -> None:
        self.contracts[event.terms.contract_id] = Contract(terms=event.terms)

    def _when_ContractTerminated(self, event: ContractTerminated) -> None:
        self.contracts[event.contract_id].terminated_on = event.terminated_on

    def _when_ContractPenaltyApplied(self, event: ContractPenaltyApplied) -> None:
        self._run(event.run_id).penalties.append((event.contract_id, event.reason))
        self.contracts[event.contract_id].penalties[event.reason] = event.line
        self.last_posting_date = event.line.posting_date


def _check_tax_rate(rate: Decimal, where: str) -> None:
    if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(100):
        raise AccountError(f"{where}: tax rate {rate} must be a percentage from 0 to 100")
