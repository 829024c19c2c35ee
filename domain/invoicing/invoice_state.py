"""The Invoice's state and how each of its events evolves it (`_when_<Event>`).

`Invoice` (domain.invoicing.invoice) adds the commands, which decide; this class
only applies what was decided.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID

from domain.billing.lines import InvoiceLine
from domain.billing.pricing import tax_by_rate
from domain.invoicing.documents import (
    Delivery,
    DocumentType,
    InvoiceStatus,
    RenderedDocument,
)
from domain.invoicing.events import (
    InvoiceApproved,
    InvoiceCancelled,
    InvoiceClosed,
    InvoiceCredited,
    InvoiceDelivered,
    InvoiceLineAdded,
    InvoiceOpened,
    InvoiceQuarantined,
    InvoiceRejected,
    InvoiceReleased,
    InvoiceReleasedFromQuarantine,
    InvoiceRendered,
    InvoiceRulesPassed,
)
from domain.invoicing.review import (
    ReviewStatus,
)
from domain.invoicing.review_rules import Verdict
from domain.shared.model import Aggregate
from domain.shared.money import round_to_currency


class InvoiceState(Aggregate):
    kind = "invoice"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.run_id = ""
        self.account_id = ""
        self.currency = ""
        self.posting_date: date | None = None
        self.status = InvoiceStatus.OPEN
        self.lines: list[InvoiceLine] = []
        self.documents: dict[str, RenderedDocument] = {}
        self.delivery: Delivery | None = None
        self.number: int | None = None
        self.issued_by: str | None = None
        """The issuing entity; None: the default one."""
        self.printed_number: str | None = None
        """The number as its entity's format printed it; None: INV-/CN- format."""
        self.subtotal = Decimal(0)
        self._tax: Decimal | None = Decimal(0)
        """The tax; None while lines were added since it was last computed (`tax`)."""
        self.closed_by_run: str | None = None
        self.released = False
        self.released_by_run: str | None = None
        """The run whose settings govern rendering and delivery: the closing run, or
        the later run that released a held invoice."""
        self.due_date: date | None = None
        self.review_status: ReviewStatus | None = None
        """None while open; a closed invoice starts as a draft."""
        self.review_reason: str | None = None
        """The reason given for the latest review change (a rule's, or an operator's)."""
        self.review_rule: str | None = None
        """The rule that quarantined or rejected the invoice; None when an operator did."""
        self.verdicts: tuple[Verdict, ...] = ()
        """Every validation rule's verdict when the invoice closed (none: no rules)."""
        self.document_type = DocumentType.INVOICE
        self.corrects: UUID | None = None
        """A credit note's: the invoice it corrects."""
        self.corrects_number: int | None = None
        self.credit_reason: str | None = None
        """A credit note's: why it was issued."""
        self.credits: dict[UUID, InvoiceCredited] = {}
        """An invoice's: the credit notes correcting it, by id."""
        self.tax_per_rate = True
        """How `tax` was computed: per rate, rounded once (False: the sum of the line
        taxes, on credit notes and invoices closed before the rule;
        `domain.billing.pricing`)."""
        self._net_by_rate: dict[Decimal, Decimal] = {}

    def _when_InvoiceOpened(self, event: InvoiceOpened) -> None:
        self.run_id = event.run_id
        self.account_id = event.account_id
        self.currency = event.currency
        self.posting_date = event.posting_date
        self.document_type = event.document_type
        self.corrects = event.corrects
        self.corrects_number = event.corrects_number
        self.credit_reason = event.reason
        # An invoice's tax is rounded once per rate; a credit note's lines carry
        # what they take off the invoice's per-rate tax, so its tax is their sum.
        self.tax_per_rate = event.document_type is not DocumentType.CREDIT_NOTE
        # Running totals are shown at the currency's minor unit ("0.00", not "0").
        self.subtotal = self._tax = round_to_currency(Decimal(0), event.currency)

    def _when_InvoiceLineAdded(self, event: InvoiceLineAdded) -> None:
        line = event.line
        self.lines.append(line)
        self.subtotal += line.amount
        self._net_by_rate[line.tax_rate] = self._net_by_rate.get(line.tax_rate, Decimal(0)) + (
            line.amount
        )
        # Computed when read (`tax`): replaying a thousand-line invoice rounds its
        # rates once, not once per line.
        self._tax = None

    @property
    def opened_by_run(self) -> str:
        """The run that opened (made) the invoice: `run_id`, under the name the events
        that also name another run (`InvoiceReleased`) give it."""
        return self.run_id

    @property
    def tax(self) -> Decimal:
        """The invoice's tax: as closed, or for an open invoice, of its lines so far."""
        if self._tax is None:
            self._tax = self._tax_of_lines()
        return self._tax

    @property
    def total(self) -> Decimal:
        """subtotal + tax."""
        return self.subtotal + self.tax

    def _tax_of_lines(self) -> Decimal:
        """The tax of the lines so far: each rate's taxable amount taxed and rounded
        once (an invoice), or the sum of the line taxes (a credit note, whose lines
        carry the invoice's tax per rate: `domain.invoicing.credit_notes`)."""
        zero = round_to_currency(Decimal(0), self.currency)
        if not self.tax_per_rate:
            return sum((line.tax for line in self.lines), zero)
        return sum(tax_by_rate(self._net_by_rate, self.currency).values(), zero)

    def _when_InvoiceRendered(self, event: InvoiceRendered) -> None:
        self.documents[event.format] = RenderedDocument(
            format=event.format, sha256=event.sha256, location=event.location, size=event.size
        )

    def _when_InvoiceDelivered(self, event: InvoiceDelivered) -> None:
        self.delivery = Delivery(
            channel=event.channel,
            recipient=event.recipient,
            message_id=event.message_id,
            location=event.location,
            delivered_at=event.timestamp,
        )

    def _when_InvoiceCredited(self, event: InvoiceCredited) -> None:
        self.credits[event.credit_note_id] = event

    def _when_InvoiceRulesPassed(self, event: InvoiceRulesPassed) -> None:
        self.verdicts = event.verdicts

    def _when_InvoiceApproved(self, event: InvoiceApproved) -> None:
        self._reviewed(ReviewStatus.APPROVED, event.reason)

    def _when_InvoiceQuarantined(self, event: InvoiceQuarantined) -> None:
        self._reviewed(ReviewStatus.QUARANTINED, event.reason, event.rule, event.verdicts)

    def _when_InvoiceReleasedFromQuarantine(self, event: InvoiceReleasedFromQuarantine) -> None:
        self._reviewed(ReviewStatus.DRAFT, event.reason)

    def _when_InvoiceRejected(self, event: InvoiceRejected) -> None:
        self._reviewed(ReviewStatus.REJECTED, event.reason, event.rule, event.verdicts)

    def _when_InvoiceCancelled(self, event: InvoiceCancelled) -> None:
        self._reviewed(ReviewStatus.CANCELLED, event.reason)

    def _reviewed(
        self,
        status: ReviewStatus,
        reason: str | None,
        rule: str | None = None,
        verdicts: tuple[Verdict, ...] = (),
    ) -> None:
        self.review_status = status
        self.review_reason = reason
        self.review_rule = rule
        if verdicts:
            self.verdicts = verdicts

    def _when_InvoiceReleased(self, event: InvoiceReleased) -> None:
        self.released = True
        self.released_by_run = event.run_id

    def _when_InvoiceClosed(self, event: InvoiceClosed) -> None:
        self.status = InvoiceStatus.CLOSED
        self.review_status = ReviewStatus.DRAFT
        self.closed_by_run = event.closed_by_run or self.run_id
        self.released = event.released
        self.released_by_run = self.closed_by_run if event.released else None
        self.number = event.number
        self.issued_by = event.issued_by
        self.printed_number = event.printed_number
        self.due_date = event.due_date
        if event.posting_date is not None:
            self.posting_date = event.posting_date
        self.subtotal = event.subtotal
        self._tax = event.tax
        self.tax_per_rate = event.tax_per_rate
