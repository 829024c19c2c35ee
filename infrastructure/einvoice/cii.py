"""UN/CEFACT Cross Industry Invoice D16B, EN 16931 (the Factur-X EN 16931 profile).

The same invoice as the UBL document (`infrastructure.einvoice.ubl`), in CII's
element order. A credit note is a CII invoice of type 381 with its amounts
stated positive, citing the invoice it corrects. EN 16931 only: a currency with
3 minor digits is refused (`NotConformant`), see docs/einvoicing.md.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from lxml import etree

from domain.shared.money import plain
from infrastructure.einvoice.common import (
    EN16931,
    amount,
    e_lines,
    exemption,
    payment_means,
    require_en16931,
    sign,
)

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
UNIT = "C62"


def _el(parent: Any, namespace: str, name: str, text: object = None, **attributes: str) -> Any:
    element = etree.SubElement(parent, f"{{{namespace}}}{name}", attributes)
    if text is not None:
        element.text = text if isinstance(text, str) else str(text)
    return element


def _ram(parent: Any, name: str, text: object = None, **attributes: str) -> Any:
    return _el(parent, RAM, name, text, **attributes)


def _date(parent: Any, name: str, value: date, namespace: str = UDT) -> None:
    _el(_ram(parent, name), namespace, "DateTimeString", value.strftime("%Y%m%d"), format="102")


def build_cii(doc: Any) -> bytes:
    """The invoice or credit note `doc` as a CII D16B document (UTF-8 bytes)."""
    require_en16931(doc, "CII")
    credit_note = bool(getattr(doc, "is_credit_note", False))
    root = etree.Element(
        f"{{{RSM}}}CrossIndustryInvoice",
        nsmap={"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT},
    )
    context = _el(root, RSM, "ExchangedDocumentContext")
    _ram(_ram(context, "GuidelineSpecifiedDocumentContextParameter"), "ID", EN16931)
    header = _el(root, RSM, "ExchangedDocument")
    _ram(header, "ID", doc.display_number)
    _ram(header, "TypeCode", "381" if credit_note else "380")
    _date(header, "IssueDateTime", doc.issue_date)
    if credit_note and doc.reason:
        _ram(_ram(header, "IncludedNote"), "Content", doc.reason)
    transaction = _el(root, RSM, "SupplyChainTradeTransaction")
    for line in e_lines(doc):
        _line(transaction, line)
    agreement = _ram(transaction, "ApplicableHeaderTradeAgreement")
    _ram(agreement, "BuyerReference", doc.buyer.account_id)
    _seller(agreement, doc)
    _buyer(agreement, doc)
    _ram(transaction, "ApplicableHeaderTradeDelivery")
    _settlement(_ram(transaction, "ApplicableHeaderTradeSettlement"), doc, credit_note)
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return xml


def _address(party: Any, street: str | None, city: str | None, postcode: str | None,
             country: str) -> None:  # fmt: skip
    address = _ram(party, "PostalTradeAddress")
    if postcode:
        _ram(address, "PostcodeCode", postcode)
    if street:
        _ram(address, "LineOne", street)
    if city:
        _ram(address, "CityName", city)
    _ram(address, "CountryID", country)


def _seller(agreement: Any, doc: Any) -> None:
    seller = doc.seller
    party = _ram(agreement, "SellerTradeParty")
    _ram(party, "Name", seller.name)
    if getattr(seller, "company_id", None):
        _ram(_ram(party, "SpecifiedLegalOrganization"), "ID", seller.company_id)
    _address(party, seller.street, seller.city, seller.postal_code, seller.country_code)
    communication = _ram(party, "URIUniversalCommunication")
    if getattr(seller, "endpoint_id", None):
        _ram(communication, "URIID", seller.endpoint_id, schemeID=seller.endpoint_scheme)
    else:
        _ram(communication, "URIID", seller.email, schemeID="EM")
    if seller.vat_id:
        _ram(_ram(party, "SpecifiedTaxRegistration"), "ID", seller.vat_id, schemeID="VA")


def _buyer(agreement: Any, doc: Any) -> None:
    buyer = doc.buyer
    party = _ram(agreement, "BuyerTradeParty")
    _ram(party, "ID", buyer.account_id)
    _ram(party, "Name", buyer.name)
    address = getattr(buyer, "address", None)
    if address is not None:
        _address(party, address.street, address.city, address.postal_code, address.country_code)
    if getattr(buyer, "endpoint_id", None):
        communication = _ram(party, "URIUniversalCommunication")
        _ram(communication, "URIID", buyer.endpoint_id, schemeID=buyer.endpoint_scheme)
    elif buyer.email:
        _ram(_ram(party, "URIUniversalCommunication"), "URIID", buyer.email, schemeID="EM")
    if getattr(buyer, "vat_id", None):
        _ram(_ram(party, "SpecifiedTaxRegistration"), "ID", buyer.vat_id, schemeID="VA")


def _tax(parent: Any, category: str, rate: Decimal, reason: str | None = None,
         basis: str | None = None, calculated: str | None = None) -> None:  # fmt: skip
    tax = _ram(parent, "ApplicableTradeTax")
    header = basis is not None
    if header:
        _ram(tax, "CalculatedAmount", calculated)
    _ram(tax, "TypeCode", "VAT")
    code, text = exemption(category, reason) if header else (None, None)
    if text:
        _ram(tax, "ExemptionReason", text)
    if header:
        _ram(tax, "BasisAmount", basis)
    _ram(tax, "CategoryCode", category)
    if code:
        _ram(tax, "ExemptionReasonCode", code)
    if category != "O":
        _ram(tax, "RateApplicablePercent", plain(rate))


def _settlement(settlement: Any, doc: Any, credit_note: bool) -> None:
    cur = doc.currency
    if not credit_note:
        _ram(settlement, "PaymentReference", doc.display_number)
    _ram(settlement, "InvoiceCurrencyCode", cur)
    if not credit_note:
        code, account, bic = payment_means(doc)
        means = _ram(settlement, "SpecifiedTradeSettlementPaymentMeans")
        _ram(means, "TypeCode", code)
        _ram(_ram(means, "PayeePartyCreditorFinancialAccount"), "IBANID", account)
        if bic:
            _ram(_ram(means, "PayeeSpecifiedCreditorFinancialInstitution"), "BICID", bic)
    for part in doc.tax_breakdown:
        _tax(settlement, part.tax_category, part.tax_rate, getattr(part, "exemption_reason", None),
             amount(sign(doc, part.taxable_amount)), amount(sign(doc, part.tax)))  # fmt: skip
    if doc.service_period_start is not None:
        period = _ram(settlement, "BillingSpecifiedPeriod")
        _date(period, "StartDateTime", doc.service_period_start)
        _date(period, "EndDateTime", doc.service_period_end)
    if not credit_note:
        terms = _ram(settlement, "SpecifiedTradePaymentTerms")
        _ram(terms, "Description", doc.payment_terms)
        if doc.due_date is not None:
            _date(terms, "DueDateDateTime", doc.due_date)
    totals = _ram(settlement, "SpecifiedTradeSettlementHeaderMonetarySummation")
    subtotal, total = amount(sign(doc, doc.subtotal)), amount(sign(doc, doc.total))
    _ram(totals, "LineTotalAmount", subtotal)
    _ram(totals, "TaxBasisTotalAmount", subtotal)
    _ram(totals, "TaxTotalAmount", amount(sign(doc, doc.tax)), currencyID=cur)
    _ram(totals, "GrandTotalAmount", total)
    _ram(totals, "DuePayableAmount", total)
    if credit_note and doc.corrects is not None:
        reference = _ram(settlement, "InvoiceReferencedDocument")
        _ram(reference, "IssuerAssignedID", doc.corrects.display_number)
        _date(reference, "FormattedIssueDateTime", doc.corrects.issue_date, QDT)


def _line(transaction: Any, line: Any) -> None:
    item = _ram(transaction, "IncludedSupplyChainTradeLineItem")
    document = _ram(item, "AssociatedDocumentLineDocument")
    _ram(document, "LineID", line.position)
    if line.note:
        _ram(_ram(document, "IncludedNote"), "Content", line.note)
    product = _ram(item, "SpecifiedTradeProduct")
    _ram(product, "SellerAssignedID", line.source)
    _ram(product, "Name", line.description)
    characteristic = _ram(product, "ApplicableProductCharacteristic")
    _ram(characteristic, "Description", "Category")
    _ram(characteristic, "Value", line.category)
    price = _ram(_ram(item, "SpecifiedLineTradeAgreement"), "NetPriceProductTradePrice")
    _ram(price, "ChargeAmount", plain(line.stated.price))
    if line.stated.base_quantity is not None:
        _ram(price, "BasisQuantity", plain(line.stated.base_quantity), unitCode=UNIT)
    delivery = _ram(item, "SpecifiedLineTradeDelivery")
    _ram(delivery, "BilledQuantity", plain(line.stated.quantity), unitCode=UNIT)
    settlement = _ram(item, "SpecifiedLineTradeSettlement")
    _tax(settlement, line.tax_category, line.tax_rate)
    if line.period is not None:
        period = _ram(settlement, "BillingSpecifiedPeriod")
        _date(period, "StartDateTime", line.period[0])
        _date(period, "EndDateTime", line.period[1])
    summation = _ram(settlement, "SpecifiedTradeSettlementLineMonetarySummation")
    _ram(summation, "LineTotalAmount", amount(line.stated.amount))
