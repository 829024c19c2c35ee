"""The Account's state and how each of its events evolves it (`_when_<Event>`).

`Account` (domain.billing.account) adds the commands, which decide; this class
only applies what was decided, so a stored history always rebuilds the same
account.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID

from domain.billing.buyer import BuyerDetails
from domain.billing.contracts import BilledItem, PenaltyReason
from domain.billing.events import (
    AccountDetailsChanged,
    AccountOpened,
    BillDaySet,
    BuyerDetailsSet,
    ChargeAdded,
    ChargeBilled,
    ContractAgreed,
    ContractPenaltyApplied,
    ContractTerminated,
    HeldInvoicesReleased,
    InvoiceHeld,
    InvoicerChanged,
    InvoicerMemberAdded,
    InvoicerMemberRemoved,
    OpenInvoiceChanged,
    PackageAmended,
    PackageBilled,
    PackageRevised,
    PackageSubscribed,
    RunBillingReopened,
    UsageBilled,
    UsageRecorded,
    ZeroInvoiceIssued,
)
from domain.billing.state import Charge, Contract, Package, RunBilling
from domain.billing.terms import UsageRecord
from domain.shared.model import Aggregate
from domain.shared.periods import index_of_bill_date


class AccountState(Aggregate):
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
        self.buyer = BuyerDetails()
        """The postal address, VAT id and electronic address invoices state."""

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

    def _when_BuyerDetailsSet(self, event: BuyerDetailsSet) -> None:
        self.buyer = event.details

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
