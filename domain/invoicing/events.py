"""The invoicing context's events: the Invoice's, the BillGroup's
(`domain.invoicing.bill_group`) and the invoice number sequences'
(`domain.invoicing.invoice_numbers`). Stored under their frozen topics
(`infrastructure/topics.py`), whatever module they live in."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from domain.billing.lines import InvoiceLine
from domain.invoicing.documents import (
    CreditedAmount,
    DocumentType,
)
from domain.invoicing.entity_details import EntityDetails
from domain.invoicing.group_terms import (
    DEFAULT_CLOSE_TYPE,
    CloseType,
    DeliveryChannel,
)
from domain.invoicing.review_rules import Verdict
from domain.receivables.dunning import DunningRules, SuspendedBilling
from domain.shared.model import DomainEvent


class InvoiceOpened(DomainEvent):
    run_id: str
    account_id: str
    currency: str
    posting_date: date
    document_type: DocumentType = DocumentType.INVOICE
    """Events written before credit notes existed are invoices."""
    corrects: UUID | None = None
    """A credit note's: the invoice it corrects."""
    corrects_number: int | None = None
    """A credit note's: the number of the invoice it corrects."""
    reason: str | None = None
    """A credit note's: why it was issued (printed on it)."""


class DocumentEvent(DomainEvent):
    """An event of a closed invoice or credit note that names its document itself
    (version 2): its account, document type and number, which a public event needs.
    Events stored before version 2 lack them: upcast to None, and the relay fills
    them from the aggregate's `InvoiceOpened` and `InvoiceClosed`
    (infrastructure/contract/facts.py). The `Invoice` aggregate fills them."""

    shared_base: ClassVar[bool] = True
    class_version: ClassVar[int] = 2
    from_aggregate: ClassVar[tuple[str, ...]] = ("account_id", "document_type", "number")
    account_id: str | None
    document_type: DocumentType | None
    number: int | None
    """The document's number in its sequence, as `InvoiceClosed.number` (how it is
    printed is a presentation of it: `printed_number`, or the INV-/CN- format)."""

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["account_id"] = None
        state["document_type"] = None
        state["number"] = None


class InvoiceLineAdded(DomainEvent):
    run_id: str
    line: InvoiceLine


class InvoiceClosed(DomainEvent):
    run_id: str
    account_id: str
    currency: str
    number: int
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    line_count: int
    closed_by_run: str | None = None
    """The run that closed it, when not the run that opened it (close types)."""
    released: bool = True
    """Rendered and delivered now (the run reached the invoicer's bill day); a held
    invoice waits for `InvoiceReleased` from a later run that reaches it."""
    due_date: date | None = None
    """Issue (posting) date plus the account's payment terms; None on invoices closed
    before payment terms existed, and on credit notes (nothing is due)."""
    document_type: DocumentType = DocumentType.INVOICE
    """As opened: lets a reader of the log (a report per run) tell a credit note's
    close from an invoice's without its opening event."""
    posting_date: date | None = None
    """The issue (posting) date set by a later closing run (`user_bill_cycle`): the
    invoice is issued when it closes, not when it was opened. None: as opened."""
    tax_per_rate: bool = False
    """True: `tax` is each rate's taxable amount taxed and rounded once (BR-CO-17);
    False (credit notes, and invoices closed before that rule): the sum of the
    lines' taxes."""
    issued_by: str | None = None
    """The issuing entity (`domain.invoicing.entities`) whose sequence numbered it;
    None: the default entity (the BILLRUN_SELLER_* settings)."""
    printed_number: str | None = None
    """The number as the entity's number format prints it (`BE-2026-000001`); None:
    the default entity's INV-/CN- format applied to `number`."""
    corrects_number: int | None
    """A credit note's: the number of the invoice it corrects, as in its
    `InvoiceOpened` (class version 2; None for an invoice, and for a credit note's
    close stored before, whose public form takes it from the `InvoiceOpened`)."""

    class_version: ClassVar[int] = 2
    from_aggregate: ClassVar[tuple[str, ...]] = ("corrects_number",)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["corrects_number"] = None


class InvoiceCredited(DocumentEvent):
    """A credit note corrects this issued invoice; recorded in the transaction that
    issues the credit note, so credits on one invoice are serialised by its version
    and can never add up to more than its total."""

    run_id: str
    credit_note_id: UUID
    credit_note_number: int
    reason: str
    amounts: tuple[CreditedAmount, ...]
    """Per tax rate, as the credit note's lines."""
    total: Decimal
    """What the credit note takes off the invoice (tax included): minus its total."""
    currency: str | None
    """The invoice's (version 2; None: stored before)."""

    from_aggregate: ClassVar[tuple[str, ...]] = (*DocumentEvent.from_aggregate, "currency")

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        DocumentEvent.upcast_v1_v2(state)
        state["currency"] = None


class InvoiceReleased(DocumentEvent):
    """A held invoice is released for rendering and delivery by a later run."""

    run_id: str
    """The run that released it."""
    opened_by_run: str | None
    """The run that made the invoice (version 2; None: stored before)."""

    from_aggregate: ClassVar[tuple[str, ...]] = (*DocumentEvent.from_aggregate, "opened_by_run")

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        DocumentEvent.upcast_v1_v2(state)
        state["opened_by_run"] = None


class InvoiceRendered(DocumentEvent):
    """A document of the closed invoice was rendered and stored (named by its hash)."""

    run_id: str
    format: str
    sha256: str
    location: str
    size: int


class InvoiceDelivered(DocumentEvent):
    """The invoice went out by its bill group's channel (`email`, `file` or `none`)."""

    run_id: str
    channel: str
    recipient: str | None
    message_id: str
    location: str | None


class InvoiceApproved(DocumentEvent):
    """An operator approved the closed invoice: it is final, and may be issued."""

    run_id: str
    reason: str | None = None


class InvoiceQuarantined(DocumentEvent):
    """The invoice waits for an operator: by a rule when it closed (`rule` names it,
    `verdicts` holds every rule's verdict), or by an operator (`rule` None)."""

    run_id: str
    reason: str
    rule: str | None = None
    verdicts: tuple[Verdict, ...] = ()


class InvoiceReleasedFromQuarantine(DocumentEvent):
    """Back to draft after quarantine."""

    run_id: str
    reason: str | None = None


class InvoiceRejected(DocumentEvent):
    """The invoice is never issued: by a rule when it closed, or by an operator."""

    run_id: str
    reason: str
    rule: str | None = None
    verdicts: tuple[Verdict, ...] = ()


class InvoiceCancelled(DocumentEvent):
    """An operator cancelled the invoice before it was approved: never issued."""

    run_id: str
    reason: str


class InvoiceRulesPassed(DomainEvent):
    """Every validation rule of the bill group passed when the invoice closed (each
    verdict with its reason); the invoice stays a draft."""

    run_id: str
    verdicts: tuple[Verdict, ...]


class BillGroupConfigured(DomainEvent):
    group_id: str
    delivery_channel: DeliveryChannel
    email_subject: str | None
    email_template: str | None
    """A jinja2 template for the email body; None: the built-in one."""
    first_invoice_email_template: str | None
    """The template for an account's first invoice (seed); None: `email_template`."""
    close_type: CloseType = DEFAULT_CLOSE_TYPE
    zero_invoices: bool = True
    """An account with an active package but nothing billed still gets an
    invoice (a zero one), so every cycle leaves a paper trail."""
    quarantine_above: Decimal | None = None
    """Review rule: quarantine an invoice whose total is above this (in its currency)."""
    reject_negative: bool = False
    """Review rule: reject an invoice whose total is negative."""
    quarantine_without_email: bool = False
    """Review rule: quarantine an invoice whose account has no invoice email."""
    payment_terms_days: int | None = None
    """Net days from an invoice's issue to its due date; None: 30 (an account's own
    terms come first)."""
    dunning: DunningRules = DunningRules()
    suspended_billing: SuspendedBilling = SuspendedBilling.BILL
    issuing_entity: str | None = None
    """The entity that bills the group (`billrun entity`); None: the default entity."""


class InvoiceNumbersReserved(DomainEvent):
    run_id: str
    first: int
    count: int


class IssuingEntityConfigured(DomainEvent):
    """An issuing entity's details, set or changed (the whole set each time, so one
    event rebuilds it); `details` is `domain.invoicing.entities.EntityDetails`."""

    entity_id: str
    details: EntityDetails
