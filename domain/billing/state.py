"""What an Account holds, as it evolves from its events: packages with their
schedule position, charges, contracts, and what each run billed (for reopening)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from domain.billing.contracts import (
    BilledItem,
    ContractTerms,
    PenaltyReason,
    contract_end,
    spend_within,
)
from domain.billing.lines import InvoiceLine
from domain.billing.pricing import overlap
from domain.billing.terms import ChargeTerms, PackageTerms, UsageRecord
from domain.shared.periods import Period, Timing, bill_date, service_period


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

    def spend(self, billed: list[BilledItem], currency: str) -> Decimal:
        """What was billed so far within the term (up to its end) that the contract
        counts: its package's recurring and usage lines, or for an account contract
        every line (credits included, penalties not)."""
        term = Period(self.terms.start_date, self.ends_on)
        return spend_within(billed, self.terms.package_id, term, currency)


def default_first_index(timing: Timing) -> int:
    """Advance bills the first period on the start date; arrears one step later."""
    return 0 if timing is Timing.ADVANCE else 1
