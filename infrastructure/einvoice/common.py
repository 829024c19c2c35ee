"""What every e-invoice syntax decides alike: conformance, prices, payment means.

Builders read billrun's invoice view model structurally (`doc.seller`,
`doc.lines`, ...: `application.shared.ports.InvoiceDocument`), as the PDF templates do;
this package knows nothing of the application. Each rule here is documented,
with its reason, in docs/einvoicing.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.shared.money import minor_units, plain

EN16931 = "urn:cen.eu:en16931:2017"
PEPPOL_CUSTOMIZATION = f"{EN16931}#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PEPPOL_PROFILE = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"

LINE_TOLERANCE = Decimal("0.01")
"""How far quantity x price may be from a line's net amount before the price is
stated per base quantity instead (Peppol's rule PEPPOL-EN16931-R120 allows 0.02)."""

SEPA_CURRENCY = "EUR"
SEPA_CREDIT_TRANSFER = "58"
CREDIT_TRANSFER = "30"

EXEMPTION_CODES = {
    "AE": ("VATEX-EU-AE", "Reverse charge"),
    "K": ("VATEX-EU-IC", "Intra-community supply"),
    "G": ("VATEX-EU-G", "Export outside the EU"),
    "O": ("VATEX-EU-O", "Not subject to VAT"),
}
"""The VATEX code and the default reason of each category that needs one
(BR-AE-10, BR-IC-10, BR-G-10, BR-O-10); E (exempt) needs the rule's own reason."""


class NotConformant(ValueError):
    """The invoice cannot be stated in this syntax without breaking its standard."""


def claims_en16931(currency: str) -> bool:
    """Whether a document in `currency` may declare EN 16931: its amounts have at
    most 2 decimals (BR-DEC-*), so not KWD, BHD, ... (3 minor digits)."""
    return minor_units(currency) <= 2


def require_en16931(doc: Any, syntax: str) -> None:
    """Refuse (NotConformant) a syntax that only exists as EN 16931 for a currency
    whose amounts cannot meet it."""
    if not claims_en16931(doc.currency):
        raise NotConformant(
            f"{doc.display_number}: {syntax} is an EN 16931 document, whose amounts have at "
            f"most 2 decimals; {doc.currency} has {minor_units(doc.currency)}. billrun writes "
            "the PDF and a plain UBL 2.1 document (no EN 16931 claim) for this currency"
        )


def peppol(doc: Any) -> bool:
    """Whether the document is a Peppol BIS Billing 3.0 one: the seller is set up
    for Peppol and both parties have an electronic address (PEPPOL-EN16931-R010,
    R020), in a currency EN 16931 allows."""
    seller, buyer = doc.seller, doc.buyer
    return bool(
        getattr(seller, "peppol", False)
        and getattr(seller, "endpoint_id", None)
        and getattr(buyer, "endpoint_id", None)
        and claims_en16931(doc.currency)
    )


@dataclass(frozen=True)
class StatedLine:
    """A line as an e-invoice states it: quantity, net amount, price per base quantity."""

    quantity: Decimal
    amount: Decimal
    price: Decimal
    base_quantity: Decimal | None


def stated(quantity: Decimal, amount: Decimal, price: Decimal) -> StatedLine:
    """Quantity x price must give the net amount (PEPPOL-EN16931-R120). It does,
    within a cent, for a 2-decimal currency's line priced per unit. It does not
    for a yen usage line (333 x 0.7 = 233.1, billed 233) nor for a prorated one:
    those state the net amount as the price of the whole quantity (price 233 per
    base quantity 333), which is exact by construction."""
    if abs(quantity * price - amount) <= LINE_TOLERANCE:
        return StatedLine(quantity, amount, price, None)
    if quantity.is_zero():
        return StatedLine(Decimal(1) if amount >= 0 else Decimal(-1), amount, abs(amount), None)
    return StatedLine(quantity, amount, abs(amount), abs(quantity))


def payment_means(doc: Any) -> tuple[str, str, str | None]:
    """(UNCL 4461 code, account id, BIC) for paying the invoice: the seller's
    account for the invoice's currency (else its main IBAN); SEPA credit transfer
    (58) only for euros, a plain credit transfer (30) for any other currency."""
    seller = doc.seller
    account, bic = seller.iban, seller.bic
    for currency, iban, account_bic in getattr(seller, "bank_accounts", ()):
        if currency == doc.currency:
            account, bic = iban, account_bic
    code = SEPA_CREDIT_TRANSFER if doc.currency == SEPA_CURRENCY else CREDIT_TRANSFER
    return code, account.replace(" ", ""), bic


def amount(value: Decimal) -> str:
    """An amount as printed: exactly as billrun holds it, never `-0.00`."""
    return plain(value.copy_abs() if value.is_zero() else value)


def exemption(category: str, reason: str | None) -> tuple[str | None, str | None]:
    """(VATEX code, reason text) of a category that needs one; (None, None) else."""
    if category == "E":
        return None, reason or "Exempt from VAT"
    if category in EXEMPTION_CODES:
        code, default = EXEMPTION_CODES[category]
        return code, reason or default
    return None, None


@dataclass(frozen=True)
class ELine:
    """One line of an e-invoice, in the document's own sign (a credit note's positive)."""

    position: int
    description: str
    stated: StatedLine
    tax_category: str
    tax_rate: Decimal
    exemption_reason: str | None
    source: str
    category: str
    note: str | None
    period: tuple[Any, Any] | None


NO_CHARGES = "No charges for this period"


def e_lines(doc: Any) -> list[ELine]:
    """The lines to state. A credit note states its amounts positive (its type
    says they are credited), so its lines are negated. An invoice without lines
    (a zero invoice) gets one informative line of zero at its breakdown's
    category: EN 16931 requires at least one line (BR-16), and a zero invoice is
    still an invoice the buyer may need to book."""
    credit_note = getattr(doc, "is_credit_note", False)
    lines = []
    for line in doc.lines:
        price = line.net_price
        quantity = line.credited_quantity if credit_note else line.invoiced_quantity
        net = line.credited_amount if credit_note else line.amount
        lines.append(
            ELine(
                position=line.position,
                description=line.description,
                stated=stated(quantity, net, price),
                tax_category=line.tax_category,
                tax_rate=line.tax_rate,
                exemption_reason=getattr(line, "exemption_reason", None),
                source=line.source,
                category=line.category,
                note=f"for {line.for_account}" if line.for_account else None,
                period=(line.service_period_start, line.service_period_end),
            )
        )
    if not lines:
        rate = doc.tax_breakdown[0]
        zero = doc.subtotal
        lines.append(
            ELine(
                position=1,
                description=NO_CHARGES,
                stated=StatedLine(Decimal(1), zero, zero, None),
                tax_category=rate.tax_category,
                tax_rate=rate.tax_rate,
                exemption_reason=getattr(rate, "exemption_reason", None),
                source="none",
                category="none",
                note=None,
                period=None,
            )
        )
    return lines


def sign(doc: Any, value: Decimal) -> Decimal:
    """A document-level amount in the document's sign (negated on a credit note)."""
    if getattr(doc, "is_credit_note", False):
        value = -value
    return value.copy_abs() if value.is_zero() else value
