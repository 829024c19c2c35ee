"""The billing context's events: the Account's, and the exchange-rate book's
(`domain.billing.exchange_rates`). Stored under their frozen topics
(`infrastructure/topics.py`), whatever module they live in."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from domain.billing.buyer import BuyerDetails
from domain.billing.contracts import ContractTerms, PenaltyReason
from domain.billing.lines import InvoiceLine
from domain.billing.terms import ChargeTerms, PackageTerms, UsageRecord
from domain.shared.model import DomainEvent

# Account ----------------------------------------------------------------------


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


class BuyerDetailsSet(DomainEvent):
    """The account's postal address, VAT id and electronic address, as its invoices
    state the buyer (`domain.billing.buyer`)."""

    details: BuyerDetails


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


class AccountMoneyEvent(DomainEvent):
    """An account event with amounts that names the account and their currency
    itself (version 2); the aggregate id is a one-way hash of the account id. Events
    stored before version 2 lack both: upcast to None, and the relay fills them from
    the aggregate's `AccountOpened` (infrastructure/contract/facts.py). The `Account`
    aggregate fills them."""

    shared_base: ClassVar[bool] = True
    class_version: ClassVar[int] = 2
    from_aggregate: ClassVar[tuple[str, ...]] = ("account_id", "currency")
    account_id: str | None
    currency: str | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["account_id"] = None
        state["currency"] = None


class ChargeAdded(AccountMoneyEvent):
    charge: ChargeTerms


class ChargeBilled(DomainEvent):
    run_id: str
    charge_id: str
    line: InvoiceLine


class ContractAgreed(AccountMoneyEvent):
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


# ExchangeRateBook ---------------------------------------------------------------


class ExchangeRateSet(DomainEvent):
    base: str
    quote: str
    rate: Decimal
    effective_date: date


class BaseCurrencySet(DomainEvent):
    currency: str
