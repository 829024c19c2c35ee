"""The pre-invoicing report (`billrun run preview`) and its comparison with the
execution that follows.

A preview is computed by the executor's own billing code over the same batches
(`BillRunExecutor.preview`), saved nowhere but in the run's `RunPreviewed`
event: its digest, counts and amounts per currency and kind of line. When the
run completes, its statistics carry the same measures of what it billed, and
`differences` says whether the two agree and, if data changed in between, what
differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID

from application.invoicing.invoices import FamilyOutcome
from application.runs.executor import BillRunExecutor
from application.shared.app import Billing
from domain.billing.lines import InvoiceLine
from domain.billing.pricing import tax_by_rate
from domain.runs.statistics import BatchStatistics, PreviewSummary
from domain.shared.money import round_to_currency


@dataclass
class Amounts:
    """Lines, net and tax of what a preview would bill onto one invoice or for one
    account, in the invoice's currency; gross is net + tax."""

    currency: str
    lines: int = 0
    net: Decimal = Decimal(0)
    net_by_rate: dict[Decimal, Decimal] = field(default_factory=dict, repr=False)
    """The lines' net per tax rate: the tax is computed from it, as invoices do."""

    def add(self, line: InvoiceLine) -> None:
        self.lines += 1
        self.net += line.amount
        self.net_by_rate[line.tax_rate] = self.net_by_rate.get(line.tax_rate, 0) + line.amount

    @property
    def tax(self) -> Decimal:
        """Each rate's net taxed and rounded once (EN 16931 BR-CO-17), as the invoice
        closing these lines computes its tax, never the sum of the lines' own taxes
        (which can differ by a cent per rate): the preview shows what is invoiced."""
        taxes = tax_by_rate(self.net_by_rate, self.currency)
        return sum(taxes.values(), round_to_currency(Decimal(0), self.currency))

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax

    def as_json(self) -> dict[str, object]:
        return {"currency": self.currency, "lines": self.lines, "net": self.net,
                "tax": self.tax, "gross": self.gross}  # fmt: skip


@dataclass
class PreviewInvoice(Amounts):
    invoice_id: UUID | None = None
    account: str = ""
    """The invoicer, whose invoice it is."""
    closes: bool = False
    """Closed by the run (numbered, issued); else it stays open (close types)."""

    def as_json(self) -> dict[str, object]:
        return {"invoice_id": self.invoice_id, "account": self.account,
                **super().as_json(), "closes": self.closes}  # fmt: skip


@dataclass
class PreviewAccount(Amounts):
    account: str = ""
    """The account the lines are for (a member's lines are on its invoicer's invoice)."""

    def as_json(self) -> dict[str, object]:
        return {"account": self.account, **super().as_json()}


@dataclass
class Preview:
    """The pre-invoicing report: the summary the run records (`RunPreviewed`) and
    the detail per invoice and per account, which is shown, not stored."""

    summary: PreviewSummary
    invoices: list[PreviewInvoice] = field(default_factory=list)
    accounts: list[PreviewAccount] = field(default_factory=list)

    def add(self, outcomes: list[FamilyOutcome]) -> None:
        """One batch's families: each invoice they would bill onto, each account."""
        for outcome in outcomes:
            closing = {c.invoice.id for c in outcome.closing}
            owners = {
                invoice.id: invoice.account_id
                for invoice in (*(c.invoice for c in outcome.closing), outcome.left_open,
                                outcome.opened)
                if invoice is not None
            }  # fmt: skip
            invoices: dict[UUID, PreviewInvoice] = {}
            accounts: dict[tuple[str, str], PreviewAccount] = {}
            for invoice_id, line in outcome.added:
                invoice = invoices.get(invoice_id)
                if invoice is None:
                    invoice = invoices[invoice_id] = PreviewInvoice(
                        line.currency,
                        invoice_id=invoice_id,
                        account=owners.get(invoice_id, line.account_id),
                        closes=invoice_id in closing,
                    )
                key = (line.account_id, line.currency)
                account = accounts.get(key)
                if account is None:
                    account = accounts[key] = PreviewAccount(line.currency, account=key[0])
                invoice.add(line)
                account.add(line)
            self.invoices.extend(invoices.values())
            self.accounts.extend(accounts.values())

    def as_json(self) -> dict[str, object]:
        return {
            "invoices_detail": [invoice.as_json() for invoice in self.invoices],
            "accounts_detail": [account.as_json() for account in self.accounts],
        }


def preview_run(billing: Billing, run_id: str, batch_size: int) -> Preview:
    """Compute the run's preview, record its summary on the (still scheduled) run,
    and return it with the detail per invoice and per account."""
    preview = Preview(PreviewSummary(digest="", invoices=0, lines=0, log_position=0))
    summary = BillRunExecutor(billing, batch_size).preview(run_id, on_batch=preview.add)
    preview.summary = summary
    run = billing.get_run(run_id)
    run.record_preview(summary, billing.clock())
    if run.has_pending_events:
        billing.save(run)
    return preview


def differences(preview: PreviewSummary, executed: BatchStatistics) -> list[str]:
    """What the execution billed differently from its preview; empty when equal."""
    if preview.digest == executed.content_digest:
        return []
    found = []
    if preview.lines != executed.lines:
        found.append(f"lines: previewed {preview.lines}, billed {executed.lines}")
    for currency in sorted(set(preview.totals) | set(executed.billed)):
        before, after = preview.totals.get(currency, {}), executed.billed.get(currency, {})
        for kind in sorted(set(before) | set(after)):
            a, b = before.get(kind, Decimal(0)), after.get(kind, Decimal(0))
            if a != b:
                found.append(f"{currency} {kind}: previewed {a}, billed {b}")
    if not found:
        found.append("the same amounts, but other lines or invoices (ids, accounts or taxes)")
    return found
