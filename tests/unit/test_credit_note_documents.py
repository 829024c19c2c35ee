"""A credit note's documents without a database: the view model, the UBL 2.1
CreditNote, the HTML and the email text; and an invoice's own due date."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from application.invoicing.delivery import (
    CREDIT_NOTE_SUBJECT_TEMPLATE,
    CREDIT_NOTE_TEMPLATE,
    email_context,
)
from application.invoicing.documents import ApplicationError, build_invoice_document
from application.shared.ports import InvoiceDocument, Seller
from domain.billing.account import Account
from domain.invoicing.credit_notes import CreditTerms, credit_key, issue_credit_note, resolve_terms
from domain.invoicing.invoice import Invoice
from domain.shared.ids import credit_note_uuid
from infrastructure.rendering.renderer import EmailTemplates, InvoiceRenderer
from tests.unit.test_documents import TAXED_LINES, Spec, taxed_invoice

AT = datetime(2026, 2, 10, tzinfo=UTC)
NS = {
    "cn": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
D = Decimal


@pytest.fixture(scope="module")
def renderer() -> InvoiceRenderer:
    return InvoiceRenderer()


def credited(
    terms: CreditTerms, lines: list[Spec] = TAXED_LINES
) -> tuple[Invoice, Invoice, Account]:
    """The taxed invoice (INV-00000007, approved) and its credit note CN-00000003."""
    invoice, account = taxed_invoice(lines)
    invoice.approve(AT)
    resolved = resolve_terms(invoice, terms)
    note_id = credit_note_uuid(invoice.id, credit_key(resolved))
    note = issue_credit_note(invoice, note_id, resolved, 3, date(2026, 2, 10), AT)
    return invoice, note, account


def full_document() -> tuple[Invoice, InvoiceDocument]:
    invoice, note, account = credited(CreditTerms(reason="Billed twice & <sorry>"))
    return invoice, build_invoice_document(note, account, Seller(), invoice)


def text(root: ET.Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, f"missing {path}"
    return found.text or ""


def amount(root: ET.Element, path: str) -> Decimal:
    found = root.find(path, NS)
    assert found is not None, path
    assert found.get("currencyID") == "EUR"
    return Decimal(found.text or "")


# The view model -------------------------------------------------------------------


def test_a_credit_notes_document_cites_the_invoice_it_corrects_and_has_no_due_date() -> None:
    invoice, doc = full_document()
    assert (doc.title, doc.display_number, doc.is_credit_note) == (
        "Credit note", "CN-00000003", True,
    )  # fmt: skip
    assert doc.corrects is not None
    assert (doc.corrects.display_number, doc.corrects.issue_date) == (
        "INV-00000007", date(2026, 1, 31),
    )  # fmt: skip
    assert (doc.issue_date, doc.due_date, doc.payment_terms_days) == (date(2026, 2, 10), None, None)
    assert doc.reason == "Billed twice & <sorry>"
    assert "Nothing to pay" in doc.payment_terms and "INV-00000007" in doc.payment_terms
    assert (doc.subtotal, doc.tax, doc.total) == (-invoice.subtotal, -invoice.tax, -invoice.total)


def test_a_credit_note_cannot_be_printed_without_the_invoice_it_corrects() -> None:
    _invoice, note, account = credited(CreditTerms(reason="x"))
    with pytest.raises(ApplicationError, match="the invoice it corrects"):
        build_invoice_document(note, account, Seller())


def test_an_invoice_is_due_on_its_own_due_date_not_on_the_sellers_terms() -> None:
    invoice, account = taxed_invoice()
    assert build_invoice_document(invoice, account, Seller()).due_date == date(2026, 3, 2)

    own = Invoice.open("2026-01", "ACME-001", "EUR", date(2026, 1, 31), AT)
    own.close(8, AT, due_date=date(2026, 2, 14))
    doc = build_invoice_document(own, account, Seller(payment_terms_days=30))
    assert (doc.due_date, doc.payment_terms_days) == (date(2026, 2, 14), 14)
    assert "Payable within 14 days" in doc.payment_terms


# The UBL CreditNote -------------------------------------------------------------------


def test_the_xml_of_a_credit_note_is_a_ubl_credit_note_referring_to_the_invoice(
    renderer: InvoiceRenderer,
) -> None:
    _invoice, doc = full_document()
    root = ET.fromstring(renderer.render_xml(doc))

    assert root.tag == f"{{{NS['cn']}}}CreditNote"
    assert [child.tag.split("}")[1] for child in root][:7] == [
        "CustomizationID", "ID", "IssueDate", "CreditNoteTypeCode", "Note",
        "DocumentCurrencyCode", "BuyerReference",
    ]  # fmt: skip
    assert text(root, "cbc:ID") == "CN-00000003"
    assert text(root, "cbc:CreditNoteTypeCode") == "381"
    assert text(root, "cbc:Note") == "Billed twice & <sorry>"
    assert root.find("cbc:DueDate", NS) is None
    reference = "cac:BillingReference/cac:InvoiceDocumentReference"
    assert text(root, f"{reference}/cbc:ID") == "INV-00000007"
    assert text(root, f"{reference}/cbc:IssueDate") == "2026-01-31"
    assert root.findall("cac:InvoiceLine", NS) == []
    assert text(root, "cac:AccountingCustomerParty/cac:Party/cac:PartyIdentification/cbc:ID") == (
        "ACME-001"
    )


def test_a_credit_notes_xml_states_its_amounts_positive_and_adds_up(
    renderer: InvoiceRenderer,
) -> None:
    invoice, doc = full_document()
    root = ET.fromstring(renderer.render_xml(doc))

    lines = root.findall("cac:CreditNoteLine", NS)
    assert len(lines) == len(invoice.lines) == 8
    assert sum(amount(x, "cbc:LineExtensionAmount") for x in lines) == invoice.subtotal
    totals = "cac:LegalMonetaryTotal/cbc:"
    assert amount(root, f"{totals}LineExtensionAmount") == invoice.subtotal
    assert amount(root, f"{totals}TaxExclusiveAmount") == invoice.subtotal
    assert amount(root, f"{totals}TaxInclusiveAmount") == invoice.total
    assert amount(root, f"{totals}PayableAmount") == invoice.total > 0
    assert amount(root, "cac:TaxTotal/cbc:TaxAmount") == invoice.tax
    subtotals = root.findall("cac:TaxTotal/cac:TaxSubtotal", NS)
    assert sum(amount(s, "cbc:TaxAmount") for s in subtotals) == invoice.tax
    assert sum(amount(s, "cbc:TaxableAmount") for s in subtotals) == invoice.subtotal
    assert "-" not in "".join(text(s, "cbc:TaxableAmount") for s in subtotals)

    by_name = {text(x, "cac:Item/cbc:Name"): x for x in lines}
    office = by_name["Private office, 6 desks"]
    assert text(office, "cbc:CreditedQuantity") == "1"
    assert amount(office, "cbc:LineExtensionAmount") == D("450.00")
    assert amount(office, "cac:Price/cbc:PriceAmount") == D("450.00")
    # Crediting the invoice's own credit line adds to what is owed: a negative
    # amount, as a negative quantity at a positive price (BR-27).
    goodwill = by_name["Goodwill credit, network outage"]
    assert text(goodwill, "cbc:CreditedQuantity") == "-1"
    assert amount(goodwill, "cbc:LineExtensionAmount") == D("-50.00")
    assert amount(goodwill, "cac:Price/cbc:PriceAmount") == D("50.00")
    calls = by_name["Phone calls, national"]
    assert text(calls, "cbc:CreditedQuantity") == "1234.500"
    assert amount(calls, "cac:Price/cbc:PriceAmount") == D("0.0125")
    assert amount(calls, "cbc:LineExtensionAmount") == D("15.43")


def test_a_partial_credit_at_zero_tax_never_prints_a_negative_zero(
    renderer: InvoiceRenderer,
) -> None:
    lines: list[Spec] = [
        ("Books", "charge", "charges", "1", "80.00", "80.00", "0",
         date(2026, 1, 5), date(2026, 1, 5), "one-off", "ACME-001"),
    ]  # fmt: skip
    invoice, note, account = credited(CreditTerms(reason="damaged", amount=D("30")), lines)
    root = ET.fromstring(
        renderer.render_xml(build_invoice_document(note, account, Seller(), invoice))
    )
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "0.00"
    assert text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "30.00"
    (line,) = root.findall("cac:CreditNoteLine", NS)
    assert (text(line, "cbc:CreditedQuantity"), text(line, "cbc:LineExtensionAmount")) == (
        "1", "30.00",
    )  # fmt: skip
    assert text(line, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID") == "Z"


# The HTML and the PDF -----------------------------------------------------------------


def test_the_html_of_a_credit_note_says_credit_note_its_number_the_invoice_and_the_reason(
    renderer: InvoiceRenderer,
) -> None:
    _invoice, doc = full_document()
    html = renderer.render_html(doc)
    for expected in (
        "<title>Credit note CN-00000003</title>",
        "CREDIT NOTE",
        "Credit note number",
        "Corrects invoice",
        "INV-00000007 of 31 Jan 2026",
        "Billed twice &amp; &lt;sorry&gt;",
        "Nothing to pay",
        "Total credited",
        "-1,453.85",
    ):
        assert expected in html, expected
    assert "Due date" not in html
    assert "IBAN" not in html.split("Nothing to pay")[1].split("</section>")[0]


def test_a_credit_note_pdf_of_eight_lines_is_one_page(renderer: InvoiceRenderer) -> None:
    _invoice, doc = full_document()
    assert len(renderer.layout(doc).pages) == 1
    assert renderer.render_pdf(doc).startswith(b"%PDF-")


# The email ------------------------------------------------------------------------------


def test_a_credit_notes_email_says_credit_note_and_what_it_credits() -> None:
    _invoice, doc = full_document()
    context = email_context(doc, first_invoice=False)
    templates = EmailTemplates()
    subject = templates.render_text(CREDIT_NOTE_SUBJECT_TEMPLATE, None, context)
    body = templates.render_text(CREDIT_NOTE_TEMPLATE, None, context)

    assert subject == "Credit note CN-00000003 from Billrun Demo Ltd"
    assert "credit note CN-00000003 of 10 February 2026 for account ACME-001" in body
    assert "It corrects invoice INV-00000007 of 31 January 2026." in body
    assert "Reason:          Billed twice & <sorry>" in body
    assert "Amount credited: EUR 1,453.85" in body
    assert "Due date" not in body and "Amount due" not in body


def test_an_invoices_email_context_has_no_credit_note_names_set() -> None:
    invoice, account = taxed_invoice()
    context = email_context(build_invoice_document(invoice, account, Seller()), True)
    assert (context["credit_note"], context["corrects"], context["credited"]) == (False, None, None)
    assert context["due_date"] == date(2026, 1, 31) + timedelta(days=30)
