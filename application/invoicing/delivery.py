"""Delivering rendered invoices by their bill group's channel.

`InvoiceDelivery.deliver` is what the deliver consumer calls. One invoice goes
out at most once as far as billrun's history is concerned: an invoice already
delivered (`InvoiceDelivered` recorded) sends nothing.

Channels (the bill group's `delivery_channel`):
- `email`: SMTP, the PDF and the UBL XML attached;
- `file`: the same MIME message written as an `.eml` into the outbox folder,
  named by its Message-ID, so writing it twice leaves one file;
- `none`: nothing is sent; the delivery is recorded with channel `none`.

Crash safety. Sending and recording cannot be one transaction: an SMTP server
is not part of PostgreSQL's. The message goes out first and `InvoiceDelivered`
is recorded after, so a crash (or a lost save) between the two can send the
same email twice, never lose one. The Message-ID is deterministic per invoice
(`<invoice-<uuid>@billrun>`), so the repeat carries the same Message-ID as the
first and mail systems and receivers can recognise it as a duplicate. The file
channel has no such window worth the name: its repeat replaces the same file.

What "first invoice" means. An invoice is the account's first when the
account has no other closed invoice with a lower number. The candidates are
found in the event store, not in the invoices read model: every billed line
the account recorded names its run (`PackageBilled.run_id`, and any future
`...Billed` event with a `run_id`), and the invoice of (run, account) has a
deterministic id, so the account's own history yields its invoices without
scanning the log, and without depending on a projection's lag (or on the
`projections` package, which the application may not import).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.invoicing.documents import build_invoice_document, issuer_of
from application.shared.app import Billing
from application.shared.errors import ApplicationError
from application.shared.messages import (
    Readiness,
    mail_channels,
    render_text,
    route_for,
    text_message,
)
from application.shared.ports import (
    DocumentStore,
    InvoiceDocument,
    MailChannel,
    MessageTemplates,
    Seller,
)
from application.shared.retrying import SAVE_ATTEMPTS
from domain.billing.account import Account
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.documents import Delivery
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import ReviewStatus
from domain.runs.bill_run import BillRun
from domain.shared.dispatch import Dispatch
from domain.shared.ids import invoice_uuid
from infrastructure.settings import Settings

log = logging.getLogger(__name__)

SUBJECT_TEMPLATE = "email_subject.txt.j2"
BODY_TEMPLATE = "email_body.txt.j2"
FIRST_INVOICE_TEMPLATE = "email_first_invoice.txt.j2"
CREDIT_NOTE_SUBJECT_TEMPLATE = "email_credit_note_subject.txt.j2"
CREDIT_NOTE_TEMPLATE = "email_credit_note.txt.j2"
"""A credit note's email is always the built-in one: a bill group's own templates
are written for invoices (amount due, due date)."""


ATTACHMENT_TYPES = {"pdf": ("application", "pdf"), "xml": ("application", "xml")}


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"
    ALREADY_DELIVERED = "already_delivered"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class DeliveryOutcome:
    invoice_id: UUID
    kind: OutcomeKind
    delivery: Delivery | None = None
    """What is recorded (delivered, already delivered); None when skipped."""
    reason: str | None = None
    """Why it was skipped; nothing was sent or recorded."""
    first_invoice: bool | None = None

    @property
    def delivered(self) -> bool:
        return self.kind is OutcomeKind.DELIVERED


def ready_for_delivery(invoice: Invoice, run: BillRun) -> Readiness:
    """May this invoice go out now? The one place delivery policy is decided.

    It is closed and released, not quarantined, rejected or cancelled, approved
    when its governing run requires approval (`RunSettings.approval_required`, the
    essensys flow; otherwise a draft goes out once rendered, the LogiSense flow),
    its run delivers invoices, and it has a PDF.
    """
    status = invoice.review_status.value if invoice.review_status else "open"
    checks = (
        (invoice.is_closed, "the invoice is still open"),
        (invoice.released, "held until a run reaches the invoicer's bill day"),
        (not invoice.withheld, f"the invoice is {status}: it is not delivered"),
        (
            not run.settings.approval_required or invoice.review_status is ReviewStatus.APPROVED,
            f"run {run.run_id} requires approval: the invoice is {status}, not approved",
        ),
        (run.settings.deliver_invoices, f"run {run.run_id} does not deliver invoices"),
        ("pdf" in invoice.documents, "the invoice has no PDF yet"),
    )
    for ready, reason in checks:
        if not ready:
            return Readiness(False, reason)
    return Readiness(True)


def governing_run(invoice: Invoice) -> str:
    """The run whose settings decide rendering and delivery: the one that released the
    invoice (closed it on the bill day, or released it later), else the opening run."""
    return invoice.released_by_run or invoice.run_id


def invoice_message_id(invoice_id: UUID) -> str:
    """The same Message-ID every time the invoice is sent, so repeats are recognisable."""
    return f"<invoice-{invoice_id}@billrun>"


class InvoiceDelivery:
    """Sends closed, rendered invoices out by their bill group's channel."""

    def __init__(
        self,
        billing: Billing,
        store: DocumentStore,
        channels: Mapping[str, MailChannel],
        templates: MessageTemplates,
        seller: Seller,
    ) -> None:
        self.billing = billing
        self.store = store
        self.channels = dict(channels)
        self.templates = templates
        self.seller = seller

    def deliver(self, invoice_id: UUID) -> DeliveryOutcome:
        """Deliver the invoice once; an invoice already delivered sends nothing.

        Skips (recording and sending nothing) an invoice that is not ready
        (`ready_for_delivery`) or whose email channel has no recipient. Raises
        InvoiceNotFound, ChannelUnavailable, DeliveryRefused, or the channel's
        OSError when sending failed (nothing recorded: retry later).
        """
        invoice = self.billing.get_invoice(invoice_id)
        if invoice.delivery is not None:
            return DeliveryOutcome(invoice_id, OutcomeKind.ALREADY_DELIVERED, invoice.delivery)
        readiness = ready_for_delivery(invoice, self.billing.get_run(governing_run(invoice)))
        if not readiness:
            return DeliveryOutcome(invoice_id, OutcomeKind.SKIPPED, reason=readiness.reason)
        account = self.billing.get_account(invoice.account_id)
        group = self.billing.get_bill_group(account.bill_group)
        message_id = invoice_message_id(invoice.id)

        route = route_for(self.channels, group, account)
        if route.channel is None:  # channel `none`
            return self._record(invoice, "none", None, message_id, None, first_invoice=None)
        if route.skipped is not None:
            return DeliveryOutcome(invoice_id, OutcomeKind.SKIPPED, reason=route.skipped)
        first = self.is_first_invoice(invoice, account)
        message = self.compose(invoice, account, group, first)
        location = route.channel.send(message)
        log.info("invoice %s sent by %s to %s", invoice.id, route.name.value, route.recipient)
        return self._record(
            invoice, route.name.value, route.recipient, message_id, location, first_invoice=first
        )

    # The message ----------------------------------------------------------------

    def compose(
        self, invoice: Invoice, account: Account, group: BillGroup, first_invoice: bool
    ) -> EmailMessage:
        """The MIME message of an invoice (or a credit note): text body, the PDF and the
        XML attached."""
        corrected = None if invoice.corrects is None else self.billing.get_invoice(invoice.corrects)
        seller = issuer_of(self.billing, invoice, self.seller)
        document = build_invoice_document(invoice, account, seller, corrected)
        context = email_context(document, first_invoice, xml_attached="xml" in invoice.documents)
        subject_name, subject_source = SUBJECT_TEMPLATE, group.email_subject
        if invoice.is_credit_note:
            subject_name, subject_source = CREDIT_NOTE_SUBJECT_TEMPLATE, None
            body_name, body_source = CREDIT_NOTE_TEMPLATE, None
        elif first_invoice and group.first_invoice_email_template is not None:
            body_name, body_source = FIRST_INVOICE_TEMPLATE, group.first_invoice_email_template
        elif first_invoice and group.email_template is None:
            body_name, body_source = FIRST_INVOICE_TEMPLATE, None
        else:
            body_name, body_source = BODY_TEMPLATE, group.email_template
        where = f"invoice {document.display_number}: bill group {group.group_id!r}"
        subject = render_text(self.templates, subject_name, subject_source, context, where)
        body = render_text(self.templates, body_name, body_source, context, where)
        message = text_message(
            message_id=invoice_message_id(invoice.id),
            sent_at=self.billing.clock(),
            seller=seller,
            to=(account.name, account.invoice_email),
            subject=subject,
            body=body,
            headers={"X-Billrun-Invoice": document.display_number},
        )
        for document_format in ("pdf", "xml"):
            recorded = invoice.documents.get(document_format)
            if recorded is None:
                continue  # the XML is optional; ready_for_delivery demands the PDF
            maintype, subtype = ATTACHMENT_TYPES[document_format]
            message.add_attachment(
                self.store.get(recorded.location),
                maintype=maintype,
                subtype=subtype,
                filename=f"{document.display_number}.{document_format}",
            )
        return message

    def is_first_invoice(self, invoice: Invoice, account: Account) -> bool:
        """True unless the account has another closed invoice with a lower number that
        was or may still be issued (a rejected or cancelled one never is). A credit
        note is never an account's first invoice (and never counts as one: credit
        notes are not among the (run, account) invoices looked at)."""
        if invoice.is_credit_note:
            return False
        run_ids = {
            run_id
            for event in self.billing.iter_history(account.id)
            if isinstance(run_id := getattr(event, "run_id", None), str)
        }
        candidates = [invoice_uuid(run_id, account.account_id) for run_id in run_ids]
        others = self.billing.load_many(Invoice, [i for i in candidates if i != invoice.id])
        return not any(
            other.is_closed
            and other.number is not None
            and other.number < (invoice.number or 0)
            and other.review_status not in (ReviewStatus.REJECTED, ReviewStatus.CANCELLED)
            for other in others.values()
        )

    # Recording ------------------------------------------------------------------

    def _record(
        self,
        invoice: Invoice,
        channel: str,
        recipient: str | None,
        message_id: str,
        location: str | None,
        first_invoice: bool | None,
    ) -> DeliveryOutcome:
        for _attempt in range(SAVE_ATTEMPTS):
            if invoice.delivery is not None:
                # Another deliverer recorded it between our load and our save.
                return DeliveryOutcome(
                    invoice.id, OutcomeKind.ALREADY_DELIVERED, invoice.delivery, None, first_invoice
                )
            dispatch = Dispatch(channel, recipient, message_id, location)
            invoice.record_delivery(dispatch, self.billing.clock())
            try:
                self.billing.save(invoice)
            except RecordConflictError:
                # Someone else extended the invoice (a late XML rendering, another
                # deliverer): reload and record on top of it, without sending again.
                invoice = self.billing.get_invoice(invoice.id)
                continue
            return DeliveryOutcome(
                invoice.id, OutcomeKind.DELIVERED, invoice.delivery, None, first_invoice
            )
        raise ApplicationError(
            f"invoice {invoice.id} was sent by {channel} but kept changing while its delivery "
            f"was recorded ({SAVE_ATTEMPTS} attempts); delivering it again resends it"
        )


def email_context(
    document: InvoiceDocument, first_invoice: bool, xml_attached: bool = True
) -> dict[str, object]:
    """The names a subject or body template can use (documented in the import format)."""
    return {
        "doc": document,
        "number": document.display_number,
        "account_id": document.buyer.account_id,
        "account_name": document.buyer.name,
        "recipient": document.buyer.email,
        "currency": document.currency,
        "total": f"{document.total:,}",
        "subtotal": f"{document.subtotal:,}",
        "tax": f"{document.tax:,}",
        # Dates print as ISO 8601 (`{{ due_date }}`); `| long_date` spells them out.
        "issue_date": document.issue_date,
        "due_date": document.due_date,
        "period_start": document.service_period_start,
        "period_end": document.service_period_end,
        "payment_terms": document.payment_terms,
        "seller_name": document.seller.name,
        "seller_email": document.seller.email,
        "run_id": document.run_id,
        "first_invoice": first_invoice,
        "xml_attached": xml_attached,
        # A credit note's (its email is the built-in one; these are None on an invoice).
        "credit_note": document.is_credit_note,
        "corrects": document.corrects.display_number if document.corrects else None,
        "corrects_issue_date": document.corrects.issue_date if document.corrects else None,
        "reason": document.reason,
        "credited": f"{-document.total:,}" if document.is_credit_note else None,
    }


def invoice_delivery(billing: Billing, settings: Settings) -> InvoiceDelivery:
    """The production wiring: the file store under BILLRUN_HOME/documents, the
    outbox under BILLRUN_HOME/outbox, SMTP when BILLRUN_SMTP_URL is set."""
    from infrastructure.file_store import FileStore, documents_root
    from infrastructure.rendering.renderer import EmailTemplates

    return InvoiceDelivery(
        billing,
        FileStore(documents_root(settings)),
        mail_channels(settings),
        EmailTemplates(),
        Seller.from_settings(settings.seller),
    )
