"""Rendering closed invoices to PDF and UBL 2.1 XML, stored by content hash.

`InvoiceDocuments.render` is what the render consumer (and `billrun run
documents`, `billrun invoice pdf`) calls. It is idempotent: each format is
rendered and recorded (`InvoiceRendered`) once; asking again returns the
recorded document. The document is stored before the event is recorded, so a
crash in between leaves at most an unreferenced file in the store, and the
next attempt records the same or an equivalent file (WeasyPrint's output is
deterministic for the same input, so usually the very same hash).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.billing import Billing
from application.errors import ApplicationError
from application.ports import (
    Buyer,
    DocumentLine,
    DocumentRenderer,
    DocumentStore,
    InvoiceDocument,
    Seller,
    StoredDocument,
)
from domain.account import Account
from domain.invoice import Invoice, RenderedDocument, format_invoice_number
from infrastructure.settings import Settings

log = logging.getLogger(__name__)

DOCUMENT_FORMATS: tuple[str, ...] = ("pdf", "xml")
"""The formats billrun renders; each is also its file extension."""

# Another writer (a second render consumer, the deliverer) may extend the same
# invoice between our load and our save; each retry reloads and re-checks, and
# documents already stored are not rendered again.
SAVE_ATTEMPTS = 5


class UnknownDocumentFormat(ApplicationError):
    def __init__(self, document_format: str) -> None:
        known = ", ".join(DOCUMENT_FORMATS)
        super().__init__(f"unknown document format {document_format!r}; billrun renders {known}")


class InvoiceNotClosed(ApplicationError):
    def __init__(self, invoice_id: UUID) -> None:
        super().__init__(f"invoice {invoice_id} is still open: only closed invoices have documents")


class RenderingConflict(ApplicationError):
    """Other writers kept changing the invoice; nothing of ours was recorded."""


def build_invoice_document(invoice: Invoice, account: Account, seller: Seller) -> InvoiceDocument:
    """The view model of a closed invoice: what every format prints."""
    if not invoice.is_closed or invoice.number is None or invoice.posting_date is None:
        raise InvoiceNotClosed(invoice.id)
    issue_date = invoice.posting_date
    due_date = issue_date + timedelta(days=seller.payment_terms_days)
    number = format_invoice_number(invoice.number)
    lines = tuple(
        DocumentLine(
            position=position,
            description=line.description,
            service_period_start=line.service_period_start,
            service_period_end=line.service_period_end,
            quantity=line.quantity,
            unit_amount=line.unit_amount,
            amount=line.amount,
            source=line.source,
        )
        for position, line in enumerate(invoice.lines, start=1)
    )
    # billrun computes no tax yet (the invoice's tax is zero), so the rate is
    # derived for display only; a tax rule will carry its own rate and category.
    tax_rate = (
        (invoice.tax * 100 / invoice.subtotal).quantize(Decimal("0.01"))
        if invoice.subtotal
        else Decimal("0.00")
    )
    return InvoiceDocument(
        invoice_id=invoice.id,
        number=invoice.number,
        display_number=number,
        run_id=invoice.run_id,
        issue_date=issue_date,
        due_date=due_date,
        currency=invoice.currency,
        seller=seller,
        buyer=Buyer(account_id=account.account_id, name=account.name, email=account.invoice_email),
        lines=lines,
        subtotal=invoice.subtotal,
        tax=invoice.tax,
        total=invoice.total,
        tax_rate=tax_rate,
        tax_category="Z" if invoice.tax.is_zero() else "S",
        payment_terms=payment_terms_text(seller, number),
        service_period_start=min((line.service_period_start for line in lines), default=None),
        service_period_end=max((line.service_period_end for line in lines), default=None),
    )


def payment_terms_text(seller: Seller, number: str) -> str:
    """The terms in words; the due date itself is printed beside them."""
    if seller.payment_terms_days == 0:
        when = "Payable on receipt"
    else:
        when = f"Payable within {seller.payment_terms_days} days of the issue date"
    return f"{when} by bank transfer to IBAN {seller.iban}, quoting {number}."


class InvoiceDocuments:
    """Renders closed invoices and records where their documents are."""

    def __init__(
        self,
        billing: Billing,
        renderer: DocumentRenderer,
        store: DocumentStore,
        seller: Seller,
    ) -> None:
        self.billing = billing
        self.renderer = renderer
        self.store = store
        self.seller = seller

    def document(self, invoice_id: UUID) -> InvoiceDocument:
        """The view model of a closed invoice (InvoiceNotFound, InvoiceNotClosed)."""
        invoice = self.billing.get_invoice(invoice_id)
        return build_invoice_document(
            invoice, self.billing.get_account(invoice.account_id), self.seller
        )

    def render(
        self, invoice_id: UUID, formats: Sequence[str] = DOCUMENT_FORMATS
    ) -> list[RenderedDocument]:
        """The invoice's documents in `formats`, rendering and recording those not
        yet recorded (`InvoiceRendered`); the rest are returned as recorded.

        Refuses unknown formats (UnknownDocumentFormat), unknown invoices
        (InvoiceNotFound) and open ones (InvoiceNotClosed), recording nothing.
        """
        for document_format in formats:
            if document_format not in DOCUMENT_FORMATS:
                raise UnknownDocumentFormat(document_format)
        wanted = list(dict.fromkeys(formats))
        stored: dict[str, StoredDocument] = {}
        for _attempt in range(SAVE_ATTEMPTS):
            invoice = self.billing.get_invoice(invoice_id)
            if not invoice.is_closed:
                raise InvoiceNotClosed(invoice_id)
            missing = [f for f in wanted if f not in invoice.documents]
            if not missing:
                return [invoice.documents[f] for f in wanted]
            if any(f not in stored for f in missing):
                document = build_invoice_document(
                    invoice, self.billing.get_account(invoice.account_id), self.seller
                )
                for document_format in missing:
                    if document_format not in stored:
                        stored[document_format] = self.store.put(
                            self._render(document, document_format), document_format
                        )
            now = self.billing.clock()
            for document_format in missing:
                kept = stored[document_format]
                invoice.record_rendering(
                    document_format, kept.sha256, kept.location, kept.size, now
                )
            try:
                self.billing.save(invoice)
            except RecordConflictError:
                log.info("invoice %s changed while rendering; reloading", invoice_id)
                continue
            return [invoice.documents[f] for f in wanted]
        raise RenderingConflict(
            f"invoice {invoice_id} kept changing while its documents were recorded "
            f"({SAVE_ATTEMPTS} attempts); try again"
        )

    def render_on_close(self, invoice_id: UUID) -> list[RenderedDocument]:
        """What the render consumer calls when an invoice closes: every format if
        the invoice's run renders invoices (`RunSettings.render_invoices`), else
        nothing (the documents are then rendered on first access, by `render`)."""
        invoice = self.billing.get_invoice(invoice_id)
        if not self.billing.get_run(invoice.run_id).settings.render_invoices:
            return []
        return self.render(invoice_id)

    def content(self, document: RenderedDocument) -> bytes:
        """The stored bytes of a recorded document."""
        return self.store.get(document.location)

    def _render(self, document: InvoiceDocument, document_format: str) -> bytes:
        if document_format == "pdf":
            return self.renderer.render_pdf(document)
        if document_format == "xml":
            return self.renderer.render_xml(document)
        raise UnknownDocumentFormat(document_format)


def invoice_documents(
    billing: Billing, settings: Settings, environ: Mapping[str, str]
) -> InvoiceDocuments:
    """The production wiring: WeasyPrint renderer, the file store under
    BILLRUN_HOME/documents, the seller of the BILLRUN_SELLER_* variables."""
    from infrastructure.file_store import FileStore, documents_root
    from infrastructure.rendering.renderer import InvoiceRenderer

    return InvoiceDocuments(
        billing,
        InvoiceRenderer(),
        FileStore(documents_root(settings)),
        Seller.from_environment(environ),
    )
