"""What the document and delivery services need from the outside world.

The application states its needs as Protocols; `infrastructure/` provides the
adapters (jinja2 + WeasyPrint, the content-addressed file store, SMTP, the
`.eml` outbox) without importing this module: they satisfy these Protocols
structurally, so the layering rule (infrastructure never imports application)
holds and tests can pass fakes through the same constructors.

The invoice view model (`InvoiceDocument`) lives here too: it is what the
renderer is handed, so it is part of the renderer's contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from email.message import EmailMessage
from typing import Protocol
from uuid import UUID

from domain.invoicing.entity_details import EntityDetails
from domain.receivables.collection import GatewayAnswer
from domain.receivables.receivables import DEFAULT_PAYMENT_TERMS_DAYS
from infrastructure.settings import SellerSettings


@dataclass(frozen=True)
class Seller:
    """Who issues the invoices: printed on every document, the From of every email.

    The defaults describe a fictitious company so a demo produces complete
    documents; a real deployment sets the BILLRUN_SELLER_* variables
    (read by `infrastructure.settings.Settings`, `Seller.from_settings`).
    """

    name: str = "Billrun Demo Ltd"
    address_lines: tuple[str, ...] = ("1 Ledger Street", "1000 Brussels", "Belgium")
    country_code: str = "BE"
    """ISO 3166-1 alpha-2, for the UBL postal address."""
    vat_id: str = "BE0123456749"
    email: str = "billing@billrun.example"
    iban: str = "BE71 0961 2345 6769"
    bic: str | None = None
    payment_terms_days: int = DEFAULT_PAYMENT_TERMS_DAYS
    street: str | None = "1 Ledger Street"
    """The postal address as e-invoices state it (BG-5): street, city, postcode."""
    city: str | None = "Brussels"
    postal_code: str | None = "1000"
    company_id: str | None = "0123456749"
    """The legal registration id (BT-30), e.g. a Belgian enterprise number."""
    endpoint_scheme: str | None = "0208"
    """The electronic address (BT-34): a Peppol EAS scheme (0208: Belgian enterprise
    number, 9925: Belgian VAT, 0009: SIRET, EM: email) and the id in it."""
    endpoint_id: str | None = "0123456749"
    peppol: bool = True
    """Issue Peppol BIS Billing 3.0 UBL to buyers that have an electronic address."""
    bank_accounts: tuple[tuple[str, str, str | None], ...] = ()
    """(currency, IBAN or account id, BIC): where invoices in that currency are paid
    (any other currency: `iban`)."""

    def demo_settings(self) -> list[str]:
        """The BILLRUN_SELLER_* variables still at the built-in demo seller's values
        (name, IBAN, email: who invoices say they are from and where to pay): outside
        `billrun demo`, invoices must not go out under them."""
        demo = Seller()
        return [
            variable
            for variable, value, built_in in (
                ("BILLRUN_SELLER_NAME", self.name, demo.name),
                ("BILLRUN_SELLER_IBAN", self.iban, demo.iban),
                ("BILLRUN_SELLER_EMAIL", self.email, demo.email),
            )
            if value == built_in
        ]

    @classmethod
    def from_entity(cls, details: EntityDetails, default: Seller) -> Seller:
        """An issuing entity as its documents state it: its own legal name, address,
        ids, electronic address, bank accounts (the first is its main one) and
        payment terms; its email, else the default seller's (the From of emails)."""
        locality = " ".join(p for p in (details.postal_code, details.city) if p)
        main = details.bank_accounts[0]
        return cls(
            name=details.legal_name,
            address_lines=tuple(
                line for line in (details.street, locality, details.country_code) if line
            ),
            country_code=details.country_code,
            vat_id=details.vat_id or "",
            email=details.email or default.email,
            iban=main.account_id,
            bic=main.bic,
            payment_terms_days=details.payment_terms_days,
            street=details.street,
            city=details.city,
            postal_code=details.postal_code,
            company_id=details.company_id,
            endpoint_scheme=details.endpoint_scheme,
            endpoint_id=details.endpoint_id,
            peppol=details.peppol,
            bank_accounts=tuple((a.currency, a.account_id, a.bic) for a in details.bank_accounts),
        )

    @classmethod
    def from_settings(cls, settings: SellerSettings) -> Seller:
        """The configured seller (`Settings.seller`, read from BILLRUN_SELLER_* and
        BILLRUN_PAYMENT_TERMS_DAYS); what is not configured keeps the default, except
        the e-invoice identity (street, city, postcode, company id, electronic
        address), which is the demo seller's only while the name is."""
        default = cls()
        demo = settings.name is None
        endpoint = settings.endpoint
        if endpoint is None and demo and default.endpoint_scheme and default.endpoint_id:
            endpoint = (default.endpoint_scheme, default.endpoint_id)
        return cls(
            name=settings.name or default.name,
            address_lines=(
                default.address_lines if settings.address_lines is None else settings.address_lines
            ),
            country_code=settings.country_code or default.country_code,
            vat_id=settings.vat_id or default.vat_id,
            email=settings.email or default.email,
            iban=settings.iban or default.iban,
            bic=settings.bic or default.bic,
            payment_terms_days=(
                default.payment_terms_days
                if settings.payment_terms_days is None
                else settings.payment_terms_days
            ),
            # The demo seller's structured address and ids are its own: a seller
            # configured by name states only what it configured (never the demo's
            # Brussels address or enterprise number under another name).
            street=settings.street or (default.street if demo else None),
            city=settings.city or (default.city if demo else None),
            postal_code=settings.postal_code or (default.postal_code if demo else None),
            company_id=settings.company_id or (default.company_id if demo else None),
            endpoint_scheme=endpoint[0] if endpoint else None,
            endpoint_id=endpoint[1] if endpoint else None,
            peppol=endpoint is not None if settings.peppol is None else settings.peppol,
            bank_accounts=settings.bank_accounts,
        )


@dataclass(frozen=True)
class PostalAddress:
    """A buyer's postal address (EN 16931 BG-8): the country is required (BR-11)."""

    country_code: str
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    extra: tuple[str, ...] = ()
    """Further address lines (building, district, ...)."""


@dataclass(frozen=True)
class Buyer:
    account_id: str
    name: str
    email: str | None
    address: PostalAddress | None = None
    vat_id: str | None = None
    endpoint_scheme: str | None = None
    """The buyer's electronic address (BT-49): Peppol EAS scheme and id."""
    endpoint_id: str | None = None


@dataclass(frozen=True)
class DocumentLine:
    """One invoice line as printed. `amount` is net (tax excluded); a credit is negative."""

    position: int
    description: str
    service_period_start: date
    service_period_end: date
    quantity: Decimal
    unit_amount: Decimal
    """Exact, as priced: at least the currency's minor unit, more when the price has
    more (a usage price of 0.0125 EUR stays 0.0125)."""
    amount: Decimal
    source: str
    kind: str
    """`recurring`, `usage` or `charge` (`domain.billing.lines.LineKind`)."""
    category: str
    tax_rate: Decimal
    """Percent, e.g. 21 for 21 %."""
    tax: Decimal
    """This line's tax, rounded on its own: shown, never summed into the invoice's
    tax (which is each rate's taxable amount taxed once: `tax_breakdown`)."""
    tax_category: str
    """UNCL 5305 VAT category of the rate (`vat_category`): S or Z."""
    account_id: str
    """The account the line is for."""
    for_account: str | None = None
    """`account_id` when it is not the invoice's own account (an invoicer's invoice
    carrying a family member's line), else None: printed as "for ACCOUNT"."""
    proration: tuple[int, int] | None = None
    """(days used, days in the service period) of a prorated recurring line."""
    exemption_reason: str | None = None
    """Why a line is not taxed (E, AE, K, G, O categories), printed on e-invoices."""

    @property
    def is_credit(self) -> bool:
        return self.amount < 0

    @property
    def invoiced_quantity(self) -> Decimal:
        """The quantity for UBL: EN 16931 forbids a negative item net price (BR-27),
        so a credit priced negatively is stated as a negative quantity instead."""
        return -self.quantity if self.unit_amount < 0 else self.quantity

    @property
    def net_price(self) -> Decimal:
        """The item net price for UBL (BT-146): never negative (see `invoiced_quantity`)."""
        return -self.unit_amount if self.unit_amount < 0 else self.unit_amount

    # A credit note's line, for a UBL CreditNote: its amounts are stated positive (the
    # document's type says they are credited), so the line is negated; a line that
    # credits a credit (it then adds to what is owed) keeps a negative amount, as a
    # negative quantity at a positive price (BR-27, as above).

    @property
    def credited_amount(self) -> Decimal:
        credited = -self.amount
        return credited.copy_abs() if credited.is_zero() else credited

    @property
    def credited_quantity(self) -> Decimal:
        return self.quantity if self.unit_amount <= 0 else -self.quantity


@dataclass(frozen=True)
class TaxBreakdown:
    """The lines of one tax rate (EN 16931's VAT breakdown, BG-23).

    `tax` is `taxable_amount x rate` rounded once (BR-CO-17; `domain.billing.pricing`),
    not the sum of the rate's line taxes; on invoices closed before that rule, the
    sum of their line taxes, as they were issued.
    """

    tax_rate: Decimal
    tax_category: str
    taxable_amount: Decimal
    tax: Decimal
    exemption_reason: str | None = None


@dataclass(frozen=True)
class CorrectedInvoice:
    """The invoice a credit note corrects, as the credit note cites it."""

    invoice_id: UUID
    display_number: str
    issue_date: date


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything printed on an invoice, computed once, for every format.

    Money is `Decimal` at the currency's minor unit, exactly as on the invoice
    aggregate; nothing here is recomputed from floats or rounded again.
    """

    invoice_id: UUID
    number: int
    display_number: str
    """INV-00000042: the number customers quote."""
    run_id: str
    issue_date: date
    due_date: date | None
    """The invoice's own due date (its payment terms); None on a credit note."""
    currency: str
    seller: Seller
    buyer: Buyer
    lines: tuple[DocumentLine, ...]
    subtotal: Decimal
    """The sum of the lines' net amounts."""
    tax: Decimal
    """The sum of `tax_breakdown`'s taxes."""
    total: Decimal
    """subtotal + tax."""
    tax_breakdown: tuple[TaxBreakdown, ...]
    """One entry per tax rate, highest rate first; never empty (an invoice without
    lines has one zero-rated entry of zero, so the UBL breakdown is never empty)."""
    payment_terms: str
    service_period_start: date | None = None
    service_period_end: date | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    document_type: str = "invoice"
    """`invoice` or `credit_note` (`domain.invoicing.documents.DocumentType`)."""
    corrects: CorrectedInvoice | None = None
    """A credit note's: the invoice it corrects."""
    reason: str | None = None
    """A credit note's: why it was issued."""

    @property
    def is_credit_note(self) -> bool:
        return self.document_type == "credit_note"

    @property
    def title(self) -> str:
        """`Invoice` or `Credit note`: what the document calls itself."""
        return "Credit note" if self.is_credit_note else "Invoice"

    @property
    def payment_terms_days(self) -> int | None:
        return None if self.due_date is None else (self.due_date - self.issue_date).days

    @property
    def shows_tax_breakdown(self) -> bool:
        """Whether the PDF prints the breakdown table: more than one rate, or any tax."""
        return len(self.tax_breakdown) > 1 or not self.tax.is_zero()

    @property
    def single_tax_rate(self) -> Decimal | None:
        """The one rate of every line, or None when the lines have several."""
        return self.tax_breakdown[0].tax_rate if len(self.tax_breakdown) == 1 else None


class StoredDocument(Protocol):
    """Where a stored document is, and how to check it is the one recorded."""

    @property
    def sha256(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def size(self) -> int: ...


class DocumentStore(Protocol):
    """Keeps rendered documents by their content (SHA-256)."""

    def put(self, content: bytes, extension: str) -> StoredDocument:
        """Store `content` (storing the same bytes twice is harmless) and say where."""
        ...

    def get(self, location: str) -> bytes:
        """The bytes stored at a `location` that `put` returned."""
        ...


class DocumentRenderer(Protocol):
    def render_pdf(self, document: InvoiceDocument) -> bytes: ...
    def render_xml(self, document: InvoiceDocument) -> bytes:
        """A UBL 2.1 Invoice, or CreditNote for a credit note (EN 16931; Peppol BIS
        Billing 3.0 when seller and buyer are on Peppol), UTF-8."""
        ...

    def render_cii(self, document: InvoiceDocument) -> bytes:
        """A UN/CEFACT CII D16B invoice (EN 16931), UTF-8."""
        ...

    def render_facturx(self, document: InvoiceDocument) -> bytes:
        """The PDF as PDF/A-3b with its CII attached as `factur-x.xml` (Factur-X)."""
        ...


class MessageTemplates(Protocol):
    """Renders the text of invoice emails (subject, body)."""

    def render_text(
        self, default_name: str, source: str | None, context: Mapping[str, object]
    ) -> str:
        """Render `source` (a bill group's own template text) or, when it is None,
        the built-in template `default_name`. Raises ValueError, with a message
        saying what is wrong, for a template that cannot be rendered."""
        ...


class MailChannel(Protocol):
    """One way out for invoice emails (SMTP, the .eml outbox, ...).

    Named apart from `domain.invoicing.group_terms.DeliveryChannel`, the enum that says
    which channel a bill group uses; this is the thing that sends.
    """

    def send(self, message: EmailMessage) -> str | None:
        """Send or write `message`; return where it was written (None if nowhere).

        Raises OSError (or a subclass, e.g. smtplib.SMTPException) when it could
        not; the caller then records nothing, so the delivery can be retried.
        """
        ...


class PaymentGateway(Protocol):
    """Charges a stored payment method (an auto-pay account's token).

    `charge` must be idempotent on `idempotency_key`: a second call with the same
    key returns the first call's answer and never charges again. `lookup` says
    what became of a key (None: the gateway never received it), which is how a
    timeout or a crash between the call and its recording is reconciled.
    """

    name: str

    def charge(
        self, token: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> GatewayAnswer: ...

    def lookup(self, idempotency_key: str) -> GatewayAnswer | None: ...
