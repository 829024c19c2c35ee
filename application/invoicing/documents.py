"""Rendering closed invoices to PDF, UBL 2.1, CII and Factur-X, stored by content hash.

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
import re
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.shared.app import Billing
from application.shared.errors import ApplicationError
from application.shared.ports import (
    Buyer,
    CorrectedInvoice,
    DocumentLine,
    DocumentRenderer,
    DocumentStore,
    InvoiceDocument,
    PostalAddress,
    Seller,
    StoredDocument,
    TaxBreakdown,
)
from application.shared.retrying import SAVE_ATTEMPTS
from domain.billing.account import Account
from domain.invoicing.documents import RenderedDocument
from domain.invoicing.invoice import Invoice
from domain.shared.money import exact_price, minor_units, round_to_currency
from infrastructure.settings import Settings

log = logging.getLogger(__name__)

DOCUMENT_FORMATS: tuple[str, ...] = ("pdf", "xml")
"""The formats rendered for every invoice when it goes out (and attached to its
email): the PDF and the UBL 2.1 e-invoice (recorded as `xml`)."""

ALL_FORMATS: tuple[str, ...] = ("pdf", "xml", "cii", "facturx")
"""Every format billrun renders: also UN/CEFACT CII and the Factur-X PDF (a PDF/A-3b
carrying its CII), on demand."""

FORMAT_NAMES = {"pdf": "pdf", "ubl": "xml", "xml": "xml", "cii": "cii", "facturx": "facturx"}
"""What operators call each format (`--format ubl`) and the format it is recorded as."""

FILE_SUFFIXES = {"pdf": ".pdf", "xml": ".ubl.xml", "cii": ".cii.xml", "facturx": ".facturx.pdf"}
"""The file name suffix of each format's copy (`INV-00000042.ubl.xml`)."""

EN16931_FORMATS = frozenset({"cii", "facturx"})
"""Formats that only exist as EN 16931 documents (2 decimals at most)."""


class UnknownDocumentFormat(ApplicationError):
    def __init__(self, document_format: str) -> None:
        known = "pdf, ubl, cii, facturx"
        super().__init__(f"unknown document format {document_format!r}; billrun renders {known}")


class DocumentNotAvailable(ApplicationError):
    """This invoice has no document in that format, by a documented rule."""


def recorded_format(name: str) -> str:
    """The recorded format of an operator's format name (`ubl` -> `xml`)."""
    try:
        return FORMAT_NAMES[name]
    except KeyError:
        raise UnknownDocumentFormat(name) from None


def check_available(invoice: Invoice, document_format: str) -> None:
    """Refuse (DocumentNotAvailable) a format the invoice cannot have: CII and
    Factur-X are EN 16931 documents, whose amounts have at most 2 decimals, so an
    invoice in a currency of 3 minor digits (KWD, BHD, ...) has neither; its UBL
    claims no EN 16931 conformance (docs/einvoicing.md)."""
    if document_format in EN16931_FORMATS and minor_units(invoice.currency) > 2:
        raise DocumentNotAvailable(
            f"{invoice.name}: no {document_format} document for {invoice.currency} "
            f"({minor_units(invoice.currency)} decimals; EN 16931 allows 2): its PDF and "
            "its plain UBL 2.1 are available"
        )


class InvoiceNotClosed(ApplicationError):
    def __init__(self, invoice_id: UUID) -> None:
        super().__init__(f"invoice {invoice_id} is still open: only closed invoices have documents")


class RenderingConflict(ApplicationError):
    """Other writers kept changing the invoice; nothing of ours was recorded."""


def build_invoice_document(
    invoice: Invoice, account: Account, seller: Seller, corrected: Invoice | None = None
) -> InvoiceDocument:
    """The view model of a closed invoice or credit note: what every format prints.

    An invoice is due on its own due date (its payment terms, recorded when it
    closed); one closed before due dates were recorded, the seller's terms after
    its issue date. A credit note is due on no date, and cites the invoice it
    corrects (`corrected`, which the caller loads: `document_of`).
    """
    if (
        not invoice.is_closed
        or invoice.number is None
        or invoice.posting_date is None
        or invoice.display_number is None
    ):
        raise InvoiceNotClosed(invoice.id)
    issue_date = invoice.posting_date
    number = invoice.display_number
    if invoice.is_credit_note:
        due_date = None
        if corrected is None or corrected.id != invoice.corrects:
            raise ApplicationError(
                f"credit note {number}: the invoice it corrects ({invoice.corrects}) is needed "
                "to print it"
            )
        terms = credit_note_terms(number, corrected.name, account.account_id)
    else:
        due_date = invoice.due_date or issue_date + timedelta(days=seller.payment_terms_days)
        terms = payment_terms_text(seller, number, (due_date - issue_date).days)
    lines = tuple(
        DocumentLine(
            position=position,
            description=line.description,
            service_period_start=line.service_period_start,
            service_period_end=line.service_period_end,
            quantity=line.quantity,
            unit_amount=exact_price(line.unit_amount, invoice.currency),
            amount=line.amount,
            source=line.source,
            kind=line.kind.value,
            category=line.category,
            tax_rate=line.tax_rate,
            tax=line.tax,
            tax_category=line.vat_category or vat_category(line.tax_rate),
            exemption_reason=line.exemption_reason,
            account_id=line.account_id,
            for_account=None if line.account_id == invoice.account_id else line.account_id,
            proration=proration(line.rule),
        )
        for position, line in enumerate(invoice.lines, start=1)
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
        buyer=buyer_of(account),
        lines=lines,
        subtotal=invoice.subtotal,
        tax=invoice.tax,
        total=invoice.total,
        tax_breakdown=tax_breakdown(invoice),
        payment_terms=terms,
        service_period_start=min((line.service_period_start for line in lines), default=None),
        service_period_end=max((line.service_period_end for line in lines), default=None),
        document_type=invoice.document_type.value,
        corrects=(
            None
            if corrected is None or corrected.posting_date is None
            else CorrectedInvoice(corrected.id, corrected.name, corrected.posting_date)
        ),
        reason=invoice.credit_reason,
    )


def buyer_of(account: Account) -> Buyer:
    """The buyer as documents state it: the account's name, invoice email, postal
    address, VAT id and electronic address (`domain.billing.buyer.BuyerDetails`)."""
    details = account.buyer
    address = (
        None
        if details.country_code is None
        else PostalAddress(
            country_code=details.country_code,
            street=details.street,
            city=details.city,
            postal_code=details.postal_code,
        )
    )
    return Buyer(
        account_id=account.account_id,
        name=account.name,
        email=account.invoice_email,
        address=address,
        vat_id=details.vat_id,
        endpoint_scheme=details.endpoint_scheme,
        endpoint_id=details.endpoint_id,
    )


def document_of(billing: Billing, invoice: Invoice, seller: Seller) -> InvoiceDocument:
    """The view model of a closed invoice, loading what it prints besides itself:
    its account, its issuing entity, and for a credit note the invoice it corrects."""
    corrected = None if invoice.corrects is None else billing.get_invoice(invoice.corrects)
    return build_invoice_document(
        invoice, billing.get_account(invoice.account_id), issuer_of(billing, invoice, seller),
        corrected,
    )  # fmt: skip


def issuer_of(billing: Billing, invoice: Invoice, default: Seller) -> Seller:
    """Who issued `invoice`, as its documents state it: its issuing entity, or the
    default entity (the BILLRUN_SELLER_* settings, `default`)."""
    if invoice.issued_by is None:
        return default
    details = billing.get_entity(invoice.issued_by).details
    assert details is not None  # an entity is recorded with its details
    return Seller.from_entity(details, default)


def vat_category(rate: Decimal) -> str:
    """The UNCL 5305 VAT category code of a line taxed at `rate` percent.

    billrun's tax rules carry a rate and nothing else, so the category follows
    from the rate: S (standard rated; EN 16931 uses S for every positive rate,
    reduced ones included) or Z (zero rated) for 0 %. Z is the one zero-rate
    category that needs no further data: exempt (E) requires an exemption
    reason (BT-120/121), reverse charge (AE) the buyer's VAT number,
    intra-community (K) and export (G) delivery details, and "not subject to
    VAT" (O) forbids the seller's VAT number on the invoice. A deployment whose
    0 % lines are really exempt or reverse-charged needs the tax rule to carry
    its category (a domain change).
    """
    return "S" if rate > 0 else "Z"


_PRORATED = re.compile(r":prorated:(\d+)/(\d+)$")


def proration(rule: str) -> tuple[int, int] | None:
    """(days used, days in the period) of a prorated recurring line's rule
    (`recurring:monthly:advance:prorated:17/31`), else None."""
    found = _PRORATED.search(rule)
    return None if found is None else (int(found.group(1)), int(found.group(2)))


def tax_breakdown(invoice: Invoice) -> tuple[TaxBreakdown, ...]:
    """One entry per tax rate, highest first: the rate's taxable amount and its tax
    as the invoice computed it (rounded once per rate, EN 16931 BR-CO-17; on an
    invoice closed before that rule, the sum of its lines' taxes), so the entries
    add up to the invoice's subtotal and tax exactly."""
    zero = round_to_currency(Decimal(0), invoice.currency)
    by_rate = invoice.amounts_by_rate()
    if not by_rate:
        return (TaxBreakdown(Decimal(0), vat_category(Decimal(0)), zero, zero),)
    entries: list[TaxBreakdown] = []
    for rate, (net, tax) in sorted(by_rate.items(), key=lambda item: item[0], reverse=True):
        if rate != 0:  # taxed lines are S: only 0 % lines have other categories
            entries.append(TaxBreakdown(rate, vat_category(rate), net, tax))
            continue
        # 0 % lines: one entry per category and reason (EN 16931 BG-23: each
        # category is its own breakdown); their tax is zero whatever the category.
        by_category: dict[tuple[str, str | None], Decimal] = {}
        for line in invoice.lines:
            if line.tax_rate == 0:
                key = (line.vat_category or vat_category(rate), line.exemption_reason)
                by_category[key] = by_category.get(key, zero) + line.amount
        entries.extend(
            TaxBreakdown(rate, category, amount, tax, exemption_reason=reason)
            for (category, reason), amount in sorted(by_category.items(), key=_category_order)
        )
    return tuple(entries)


def _category_order(item: tuple[tuple[str, str | None], Decimal]) -> tuple[str, str]:
    (category, reason), _ = item
    return category, reason or ""


def payment_terms_text(seller: Seller, number: str, days: int | None = None) -> str:
    """The terms in words (`days` after the issue date; default: the seller's); the
    due date itself is printed beside them."""
    days = seller.payment_terms_days if days is None else days
    when = "Payable on receipt" if days == 0 else f"Payable within {days} days of the issue date"
    return f"{when} by bank transfer to IBAN {seller.iban}, quoting {number}."


def credit_note_terms(number: str, corrected: str, account_id: str) -> str:
    """What a credit note says instead of payment terms: nothing is to be paid."""
    return (
        f"Nothing to pay: {number} is deducted from what account {account_id} owes, "
        f"first on invoice {corrected}, then on other open invoices; any remainder is "
        "kept as a credit on the account."
    )


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
        return document_of(self.billing, self.billing.get_invoice(invoice_id), self.seller)

    def render(
        self, invoice_id: UUID, formats: Sequence[str] = DOCUMENT_FORMATS
    ) -> list[RenderedDocument]:
        """The invoice's documents in `formats`, rendering and recording those not
        yet recorded (`InvoiceRendered`); the rest are returned as recorded.

        Refuses unknown formats (UnknownDocumentFormat), unknown invoices
        (InvoiceNotFound) and open ones (InvoiceNotClosed), recording nothing.
        """
        wanted = list(dict.fromkeys(recorded_format(name) for name in formats))
        stored: dict[str, StoredDocument] = {}
        # Another writer (a second render consumer, the deliverer) may extend the same
        # invoice between our load and our save; each retry reloads and re-checks, and
        # documents already stored are not rendered again.
        for _attempt in range(SAVE_ATTEMPTS):
            invoice = self.billing.get_invoice(invoice_id)
            if not invoice.is_closed:
                raise InvoiceNotClosed(invoice_id)
            for recorded in wanted:
                check_available(invoice, recorded)
            missing = [f for f in wanted if f not in invoice.documents]
            if not missing:
                return [invoice.documents[f] for f in wanted]
            if any(f not in stored for f in missing):
                document = document_of(self.billing, invoice, self.seller)
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
        """What the render consumer calls when an invoice closes or is released:
        every format if the invoice is released (the run reached the invoicer's bill
        day) and that run renders invoices (`RunSettings.render_invoices`), else
        nothing (the documents are then rendered on first access, by `render`)."""
        invoice = self.billing.get_invoice(invoice_id)
        if not invoice.released:
            return []  # held: a later run that reaches the bill day releases it
        run_id = invoice.released_by_run or invoice.run_id
        if not self.billing.get_run(run_id).settings.render_invoices:
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
        if document_format == "cii":
            return self.renderer.render_cii(document)
        if document_format == "facturx":
            return self.renderer.render_facturx(document)
        raise UnknownDocumentFormat(document_format)


def invoice_documents(billing: Billing, settings: Settings) -> InvoiceDocuments:
    """The production wiring: WeasyPrint renderer, the file store under
    BILLRUN_HOME/documents, the seller of the BILLRUN_SELLER_* variables."""
    from infrastructure.file_store import FileStore, documents_root
    from infrastructure.rendering.renderer import InvoiceRenderer

    return InvoiceDocuments(
        billing,
        InvoiceRenderer(),
        FileStore(documents_root(settings)),
        Seller.from_settings(settings.seller),
    )
