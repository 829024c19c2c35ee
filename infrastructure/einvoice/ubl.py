"""UBL 2.1 Invoice and CreditNote: EN 16931, and Peppol BIS Billing 3.0 when the
seller is set up for Peppol and the buyer has an electronic address.

Elements are written in the order of the UBL schema's sequences (a validator
rejects any other order). A currency with 3 minor digits (KWD, BHD) cannot meet
EN 16931's 2 decimals: its document is plain UBL 2.1, valid against the UBL
schema, with no CustomizationID, so it claims no conformance it does not meet
(docs/einvoicing.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lxml import etree

from domain.shared.money import plain
from infrastructure.einvoice.common import (
    EN16931,
    PEPPOL_CUSTOMIZATION,
    PEPPOL_PROFILE,
    amount,
    claims_en16931,
    e_lines,
    exemption,
    payment_means,
    peppol,
    sign,
)

CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
ROOTS = {
    False: ("urn:oasis:names:specification:ubl:schema:xsd:Invoice-2", "Invoice"),
    True: ("urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2", "CreditNote"),
}
UNIT = "C62"  # "one" (UN/ECE Recommendation 20)


def _cac(parent: Any, name: str) -> Any:
    return etree.SubElement(parent, f"{{{CAC}}}{name}")


def _cbc(parent: Any, name: str, text: object, **attributes: str) -> Any:
    element = etree.SubElement(parent, f"{{{CBC}}}{name}", attributes)
    element.text = text if isinstance(text, str) else str(text)
    return element


def build_ubl(doc: Any) -> bytes:
    """The invoice or credit note `doc` as a UBL 2.1 document (UTF-8 bytes)."""
    credit_note = bool(getattr(doc, "is_credit_note", False))
    namespace, root_name = ROOTS[credit_note]
    root = etree.Element(
        f"{{{namespace}}}{root_name}", nsmap={None: namespace, "cac": CAC, "cbc": CBC}
    )
    cur = doc.currency
    on_peppol = peppol(doc)
    if on_peppol:
        _cbc(root, "CustomizationID", PEPPOL_CUSTOMIZATION)
        _cbc(root, "ProfileID", PEPPOL_PROFILE)
    elif claims_en16931(cur):
        _cbc(root, "CustomizationID", EN16931)
    _cbc(root, "ID", doc.display_number)
    _cbc(root, "IssueDate", doc.issue_date.isoformat())
    if credit_note:
        _cbc(root, "CreditNoteTypeCode", "381")
        if doc.reason:
            _cbc(root, "Note", doc.reason)
    else:
        if doc.due_date is not None:
            _cbc(root, "DueDate", doc.due_date.isoformat())
        _cbc(root, "InvoiceTypeCode", "380")
    _cbc(root, "DocumentCurrencyCode", cur)
    _cbc(root, "BuyerReference", doc.buyer.account_id)
    if doc.service_period_start is not None:
        period = _cac(root, "InvoicePeriod")
        _cbc(period, "StartDate", doc.service_period_start.isoformat())
        _cbc(period, "EndDate", doc.service_period_end.isoformat())
    if credit_note and doc.corrects is not None:
        reference = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(reference, "ID", doc.corrects.display_number)
        _cbc(reference, "IssueDate", doc.corrects.issue_date.isoformat())
    _seller(_cac(root, "AccountingSupplierParty"), doc)
    _buyer(_cac(root, "AccountingCustomerParty"), doc)
    if not credit_note:
        _payment_means(root, doc)
        _cbc(_cac(root, "PaymentTerms"), "Note", doc.payment_terms)
    _tax_total(root, doc)
    totals = _cac(root, "LegalMonetaryTotal")
    subtotal, total = sign(doc, doc.subtotal), sign(doc, doc.total)
    _cbc(totals, "LineExtensionAmount", amount(subtotal), currencyID=cur)
    _cbc(totals, "TaxExclusiveAmount", amount(subtotal), currencyID=cur)
    _cbc(totals, "TaxInclusiveAmount", amount(total), currencyID=cur)
    _cbc(totals, "PayableAmount", amount(total), currencyID=cur)
    for line in e_lines(doc):
        _line(root, doc, line, credit_note)
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return xml


def _address(party: Any, street: str | None, city: str | None, postcode: str | None,
             country: str, extra: tuple[str, ...] = ()) -> None:  # fmt: skip
    address = _cac(party, "PostalAddress")
    if street:
        _cbc(address, "StreetName", street)
    if city:
        _cbc(address, "CityName", city)
    if postcode:
        _cbc(address, "PostalZone", postcode)
    for text in extra:
        _cbc(_cac(address, "AddressLine"), "Line", text)
    _cbc(_cac(address, "Country"), "IdentificationCode", country)


def _tax_scheme(parent: Any, vat_id: str) -> None:
    scheme = _cac(parent, "PartyTaxScheme")
    _cbc(scheme, "CompanyID", vat_id)
    _cbc(_cac(scheme, "TaxScheme"), "ID", "VAT")


def _seller(supplier: Any, doc: Any) -> None:
    seller = doc.seller
    party = _cac(supplier, "Party")
    if getattr(seller, "endpoint_id", None):
        _cbc(party, "EndpointID", seller.endpoint_id, schemeID=seller.endpoint_scheme)
    elif not peppol(doc):
        _cbc(party, "EndpointID", seller.email, schemeID="EM")
    _cbc(_cac(party, "PartyName"), "Name", seller.name)
    _address(party, seller.street, seller.city, seller.postal_code, seller.country_code)
    if seller.vat_id:
        _tax_scheme(party, seller.vat_id)
    legal = _cac(party, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", seller.name)
    if getattr(seller, "company_id", None):
        _cbc(legal, "CompanyID", seller.company_id)
    _cbc(_cac(party, "Contact"), "ElectronicMail", seller.email)


def _buyer(customer: Any, doc: Any) -> None:
    buyer = doc.buyer
    party = _cac(customer, "Party")
    if getattr(buyer, "endpoint_id", None):
        _cbc(party, "EndpointID", buyer.endpoint_id, schemeID=buyer.endpoint_scheme)
    elif buyer.email and not peppol(doc):
        _cbc(party, "EndpointID", buyer.email, schemeID="EM")
    identification = _cac(party, "PartyIdentification")
    _cbc(identification, "ID", buyer.account_id)
    _cbc(_cac(party, "PartyName"), "Name", buyer.name)
    address = getattr(buyer, "address", None)
    if address is not None:
        _address(party, address.street, address.city, address.postal_code, address.country_code,
                 address.extra)  # fmt: skip
    if getattr(buyer, "vat_id", None):
        _tax_scheme(party, buyer.vat_id)
    _cbc(_cac(party, "PartyLegalEntity"), "RegistrationName", buyer.name)
    if buyer.email:
        _cbc(_cac(party, "Contact"), "ElectronicMail", buyer.email)


def _payment_means(root: Any, doc: Any) -> None:
    code, account, bic = payment_means(doc)
    means = _cac(root, "PaymentMeans")
    _cbc(means, "PaymentMeansCode", code)
    _cbc(means, "PaymentID", doc.display_number)
    payee = _cac(means, "PayeeFinancialAccount")
    _cbc(payee, "ID", account)
    _cbc(payee, "Name", doc.seller.name)
    if bic:
        _cbc(_cac(payee, "FinancialInstitutionBranch"), "ID", bic)


def _tax_category(parent: Any, name: str, category: str, rate: Decimal,
                  reason: str | None, with_reason: bool) -> None:  # fmt: skip
    element = _cac(parent, name)
    _cbc(element, "ID", category)
    if category != "O":  # "not subject to VAT" has no rate (BR-O-05)
        _cbc(element, "Percent", plain(rate))
    if with_reason:
        code, text = exemption(category, reason)
        if code:
            _cbc(element, "TaxExemptionReasonCode", code)
        if text:
            _cbc(element, "TaxExemptionReason", text)
    _cbc(_cac(element, "TaxScheme"), "ID", "VAT")


def _tax_total(root: Any, doc: Any) -> None:
    """The VAT breakdown (BG-23): one subtotal per category and rate, its tax
    computed on its taxable amount and rounded once (BR-CO-17); the document's
    tax is the sum of the subtotals (BR-CO-14)."""
    cur = doc.currency
    total = _cac(root, "TaxTotal")
    _cbc(total, "TaxAmount", amount(sign(doc, doc.tax)), currencyID=cur)
    for part in doc.tax_breakdown:
        subtotal = _cac(total, "TaxSubtotal")
        _cbc(subtotal, "TaxableAmount", amount(sign(doc, part.taxable_amount)), currencyID=cur)
        _cbc(subtotal, "TaxAmount", amount(sign(doc, part.tax)), currencyID=cur)
        _tax_category(subtotal, "TaxCategory", part.tax_category, part.tax_rate,
                      getattr(part, "exemption_reason", None), True)  # fmt: skip


def _line(root: Any, doc: Any, line: Any, credit_note: bool) -> None:
    cur = doc.currency
    element = _cac(root, "CreditNoteLine" if credit_note else "InvoiceLine")
    _cbc(element, "ID", line.position)
    if line.note:
        _cbc(element, "Note", line.note)
    quantity_name = "CreditedQuantity" if credit_note else "InvoicedQuantity"
    _cbc(element, quantity_name, plain(line.stated.quantity), unitCode=UNIT)
    _cbc(element, "LineExtensionAmount", amount(line.stated.amount), currencyID=cur)
    if line.period is not None:
        period = _cac(element, "InvoicePeriod")
        _cbc(period, "StartDate", line.period[0].isoformat())
        _cbc(period, "EndDate", line.period[1].isoformat())
    item = _cac(element, "Item")
    _cbc(item, "Name", line.description)
    _cbc(_cac(item, "SellersItemIdentification"), "ID", line.source)
    _tax_category(item, "ClassifiedTaxCategory", line.tax_category, line.tax_rate, None, False)
    prop = _cac(item, "AdditionalItemProperty")
    _cbc(prop, "Name", "Category")
    _cbc(prop, "Value", line.category)
    price = _cac(element, "Price")
    _cbc(price, "PriceAmount", plain(line.stated.price), currencyID=cur)
    if line.stated.base_quantity is not None:
        _cbc(price, "BaseQuantity", plain(line.stated.base_quantity), unitCode=UNIT)
