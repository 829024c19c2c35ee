"""The invoice's documents without a database: the view model, the UBL XML, the
HTML, the email templates, the content-addressed store and the mail adapters."""

from __future__ import annotations

import hashlib
import shutil
import time
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest

from application.invoicing.documents import (
    InvoiceNotClosed,
    build_invoice_document,
    exact_price,
    proration,
    vat_category,
)
from application.shared.ports import InvoiceDocument, Seller
from domain.billing.account import Account
from domain.billing.lines import InvoiceLine, LineKind
from domain.billing.pricing import tax_on
from domain.invoicing.invoice import Invoice
from domain.shared.ids import package_line_uuid
from infrastructure.file_store import FileStore
from infrastructure.mail import OutboxChannel, SmtpServer, eml_name
from infrastructure.rendering.renderer import TEMPLATES, EmailTemplates, InvoiceRenderer
from infrastructure.settings import ConfigurationError, Settings

AT = datetime(2026, 2, 1, tzinfo=UTC)
NS = {
    "ubl": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


def invoice_of(
    lines: list[tuple[str, str, date, date]],
    currency: str = "EUR",
    number: int | None = 42,
    name: str = "Acme & Sons <Ltd>",
) -> tuple[Invoice, Account]:
    """A closed invoice (number `number`; None: left open) with (description,
    amount, service start, service end) lines, posted on 2026-01-31."""
    account = Account.open("ACME-001", name, currency, "ap@acme.test", "monthly", AT)
    invoice = Invoice.open("2026-01", "ACME-001", currency, date(2026, 1, 31), AT)
    for i, (description, amount, start, end) in enumerate(lines):
        invoice.add_line(
            InvoiceLine(
                line_id=package_line_uuid("ACME-001", f"p{i}", start),
                account_id="ACME-001",
                run_id="2026-01",
                source=f"package:p{i}",
                description=description,
                service_period_start=start,
                service_period_end=end,
                quantity=Decimal(1),
                unit_amount=Decimal(amount),
                amount=Decimal(amount),
                currency=currency,
                posting_date=date(2026, 1, 31),
                rule="recurring:monthly:advance",
            ),
            AT,
        )
    if number is not None:
        invoice.close(number, AT)
    return invoice, account


JANUARY = (date(2026, 1, 1), date(2026, 1, 31))
LINES = [
    ("Private office", "1200.00", *JANUARY),
    ("Support, Q4 2025", "30.50", date(2025, 10, 1), date(2025, 12, 31)),
    ("Mail handling", "45.25", *JANUARY),
]


# An 8-line invoice of every kind of line, at two tax rates (21 % and 6 %):
# (description, kind, category, quantity, unit price, amount, rate, start, end,
# rule, account). Line 7 is a credit, line 8 is for another account of the family.
Spec = tuple[str, str, str, str, str, str, str, date, date, str, str]
TAXED_LINES: list[Spec] = [
    ("Private office, 6 desks", "recurring", "rent", "1", "450.00", "450.00", "21", *JANUARY,
     "recurring:monthly:advance", "ACME-001"),
    ("Dedicated desk", "recurring", "rent", "1", "175.48", "175.48", "21",
     date(2026, 1, 15), date(2026, 1, 31), "recurring:monthly:advance:prorated:17/31", "ACME-001"),
    ("Meeting room bundle (10 h)", "recurring", "services", "1", "180.00", "180.00", "21",
     *JANUARY, "recurring:monthly:advance", "ACME-001"),
    ("Phone calls, national", "usage", "services", "1234.500", "0.0125", "15.43", "21",
     date(2026, 1, 2), date(2026, 1, 30), "usage:42-records", "ACME-001"),
    ("Printing, colour pages", "usage", "services", "312", "0.085", "26.52", "21",
     date(2026, 1, 5), date(2026, 1, 28), "usage:9-records", "ACME-001"),
    ("Catering, team lunch", "charge", "charges", "1", "96.00", "96.00", "6",
     date(2026, 1, 22), date(2026, 1, 22), "one-off", "ACME-001"),
    ("Goodwill credit, network outage", "charge", "charges", "1", "-50.00", "-50.00", "21",
     date(2026, 1, 12), date(2026, 1, 12), "one-off", "ACME-001"),
    ("Dedicated desk", "recurring", "rent", "1", "320.00", "320.00", "21", *JANUARY,
     "recurring:monthly:advance", "ACME-002"),
]  # fmt: skip


def taxed_invoice(lines: list[Spec] = TAXED_LINES) -> tuple[Invoice, Account]:
    """A closed invoice of ACME-001 with `lines`, each taxed by the domain's rule."""
    account = Account.open("ACME-001", "Acme & Co", "EUR", "ap@acme.test", "monthly", AT)
    invoice = Invoice.open("2026-01", "ACME-001", "EUR", date(2026, 1, 31), AT)
    for i, spec in enumerate(lines):
        description, kind, category, quantity, unit, amount, rate, start, end, rule, account_id = (
            spec
        )
        invoice.add_line(
            InvoiceLine(
                line_id=package_line_uuid(account_id, f"p{i}", start),
                account_id=account_id,
                run_id="2026-01",
                source=f"{kind}:p{i}",
                description=description,
                service_period_start=start,
                service_period_end=end,
                quantity=Decimal(quantity),
                unit_amount=Decimal(unit),
                amount=Decimal(amount),
                currency="EUR",
                posting_date=date(2026, 1, 31),
                rule=rule,
                kind=LineKind(kind),
                category=category,
                tax_rate=Decimal(rate),
                tax=tax_on(Decimal(amount), Decimal(rate), "EUR"),
            ),
            AT,
        )
    invoice.close(7, AT)
    return invoice, account


def taxed_document() -> InvoiceDocument:
    return build_invoice_document(*taxed_invoice(), Seller())


@pytest.fixture(scope="module")
def renderer() -> InvoiceRenderer:
    return InvoiceRenderer()


def document(seller: Seller | None = None, **kwargs: object) -> InvoiceDocument:
    invoice, account = invoice_of(LINES, **kwargs)  # type: ignore[arg-type]
    return build_invoice_document(invoice, account, seller or Seller())


# The view model -----------------------------------------------------------------


def test_the_issue_date_is_the_posting_date_and_payment_is_due_30_days_later_by_default() -> None:
    doc = document()
    assert doc.issue_date == date(2026, 1, 31)
    assert doc.due_date == date(2026, 3, 2)
    assert doc.payment_terms_days == 30


@pytest.mark.parametrize(
    ("days", "due"),
    [(0, date(2026, 1, 31)), (14, date(2026, 2, 14)), (60, date(2026, 4, 1))],
)
def test_the_due_date_follows_the_sellers_payment_terms(days: int, due: date) -> None:
    doc = document(Seller(payment_terms_days=days))
    assert doc.due_date == due
    assert ("on receipt" in doc.payment_terms) == (days == 0)


def test_totals_equal_the_sum_of_the_lines_exactly() -> None:
    doc = document()
    assert doc.subtotal == sum(line.amount for line in doc.lines) == Decimal("1275.75")
    assert doc.tax == Decimal("0.00")
    assert doc.total == doc.subtotal + doc.tax
    assert all(isinstance(line.amount, Decimal) for line in doc.lines)


def test_the_number_is_printed_in_its_display_form() -> None:
    doc = document()
    assert doc.number == 42
    assert doc.display_number == "INV-00000042"
    assert "INV-00000042" in doc.payment_terms


def test_lines_keep_their_order_and_service_periods_and_the_invoice_spans_them_all() -> None:
    doc = document()
    assert [line.position for line in doc.lines] == [1, 2, 3]
    assert (doc.lines[1].service_period_start, doc.lines[1].service_period_end) == (
        date(2025, 10, 1),
        date(2025, 12, 31),
    )
    assert (doc.service_period_start, doc.service_period_end) == (
        date(2025, 10, 1),
        date(2026, 1, 31),
    )


def test_the_tax_breakdown_has_one_entry_per_rate_and_adds_up_to_the_invoice_exactly() -> None:
    invoice, account = taxed_invoice()
    doc = build_invoice_document(invoice, account, Seller())
    assert [(t.tax_rate, t.tax_category) for t in doc.tax_breakdown] == [
        (Decimal(21), "S"),
        (Decimal(6), "S"),
    ]
    for entry in doc.tax_breakdown:
        at_rate = [line for line in doc.lines if line.tax_rate == entry.tax_rate]
        assert entry.taxable_amount == sum(line.amount for line in at_rate)
        assert entry.tax == sum(line.tax for line in at_rate)
    assert sum(t.taxable_amount for t in doc.tax_breakdown) == doc.subtotal == invoice.subtotal
    assert sum(t.tax for t in doc.tax_breakdown) == doc.tax == invoice.tax
    assert (doc.subtotal, doc.tax, doc.total) == (
        Decimal("1213.43"),
        Decimal("240.42"),
        Decimal("1453.85"),
    )
    assert doc.total == invoice.total == doc.subtotal + doc.tax
    assert doc.shows_tax_breakdown
    assert doc.single_tax_rate is None


def test_a_rates_tax_is_its_taxable_amount_taxed_and_rounded_once_not_the_sum_of_its_lines() -> (
    None
):
    # 0.10 at 25 % is 0.025, rounded up per line to 0.03; two lines would give 0.06
    # where the rate's taxable amount rounded once (EN 16931's BR-CO-17) gives 0.05.
    line = ("Sticker", "charge", "charges", "1", "0.10", "0.10", "25", *JANUARY, "one-off")
    invoice, account = taxed_invoice([(*line, "ACME-001"), (*line, "ACME-002")])
    doc = build_invoice_document(invoice, account, Seller())
    (only,) = doc.tax_breakdown
    assert (only.taxable_amount, only.tax) == (Decimal("0.20"), Decimal("0.05"))
    assert doc.tax == invoice.tax == Decimal("0.05")
    assert [line.tax for line in doc.lines] == [Decimal("0.03"), Decimal("0.03")]  # shown only
    assert doc.single_tax_rate == Decimal(25)


def test_lines_carry_their_kind_category_rate_tax_and_the_account_only_when_another() -> None:
    doc = taxed_document()
    usage, charge, credit = doc.lines[3], doc.lines[5], doc.lines[6]
    assert (usage.kind, usage.category, usage.tax_rate, usage.tax) == (
        "usage",
        "services",
        Decimal(21),
        Decimal("3.24"),
    )
    assert (charge.kind, charge.category, charge.tax_rate, charge.tax_category) == (
        "charge",
        "charges",
        Decimal(6),
        "S",
    )
    assert credit.is_credit
    assert (credit.amount, credit.tax) == (Decimal("-50.00"), Decimal("-10.50"))
    assert [line.for_account for line in doc.lines] == [None] * 7 + ["ACME-002"]
    assert {line.account_id for line in doc.lines} == {"ACME-001", "ACME-002"}
    assert doc.lines[1].proration == (17, 31)
    assert doc.lines[0].proration is None


def test_a_credit_priced_negatively_is_a_negative_quantity_at_a_positive_price_for_ubl() -> None:
    credit = taxed_document().lines[6]
    assert (credit.invoiced_quantity, credit.net_price) == (Decimal(-1), Decimal("50.00"))
    assert credit.invoiced_quantity * credit.net_price == credit.amount


@pytest.mark.parametrize(
    ("price", "currency", "printed"),
    [
        ("450", "EUR", "450.00"),
        ("0.0125", "EUR", "0.0125"),
        ("0.012500", "EUR", "0.0125"),
        ("-50", "EUR", "-50.00"),
        ("48000", "JPY", "48000"),
        ("0.5", "JPY", "0.5"),
        ("1.5", "KWD", "1.500"),
    ],
)
def test_unit_prices_keep_every_decimal_and_at_least_the_currencys(
    price: str, currency: str, printed: str
) -> None:
    assert str(exact_price(Decimal(price), currency)) == printed
    assert exact_price(Decimal(price), currency) == Decimal(price)


def test_a_positive_rate_is_standard_rated_and_zero_is_zero_rated() -> None:
    assert [vat_category(Decimal(r)) for r in ("21", "5.5", "0", "0.00")] == ["S", "S", "Z", "Z"]


@pytest.mark.parametrize(
    ("rule", "days"),
    [
        ("recurring:monthly:advance:prorated:17/31", (17, 31)),
        ("recurring:monthly:advance", None),
        ("usage:3-records", None),
    ],
)
def test_the_prorated_days_come_from_the_lines_rule(
    rule: str, days: tuple[int, int] | None
) -> None:
    assert proration(rule) == days


def test_an_invoice_without_tax_shows_no_breakdown_but_keeps_one_zero_rated_entry() -> None:
    doc = document()
    assert [(t.tax_rate, t.tax_category, t.taxable_amount, t.tax) for t in doc.tax_breakdown] == [
        (Decimal(0), "Z", Decimal("1275.75"), Decimal("0.00"))
    ]
    assert not doc.shows_tax_breakdown


def test_an_open_invoice_has_no_documents() -> None:
    invoice, account = invoice_of(LINES, number=None)
    with pytest.raises(InvoiceNotClosed):
        build_invoice_document(invoice, account, Seller())


def test_the_seller_comes_from_the_environment_with_defaults_for_what_is_unset() -> None:
    settings = Settings.from_environment(
        {
            "BILLRUN_SELLER_NAME": "Ledger & Co",
            "BILLRUN_SELLER_ADDRESS": "2 Main Road; 75001 Paris ;France",
            "BILLRUN_PAYMENT_TERMS_DAYS": "45",
        }
    )
    seller = Seller.from_settings(settings.seller)
    assert seller.name == "Ledger & Co"
    assert seller.address_lines == ("2 Main Road", "75001 Paris", "France")
    assert seller.payment_terms_days == 45
    assert seller.iban == Seller().iban


@pytest.mark.parametrize("days", ["thirty", "-1"])
def test_bad_payment_terms_in_the_environment_are_refused(days: str) -> None:
    with pytest.raises(ConfigurationError, match="BILLRUN_PAYMENT_TERMS_DAYS"):
        Settings.from_environment({"BILLRUN_PAYMENT_TERMS_DAYS": days})


def test_an_unconfigured_seller_is_the_built_in_demo_seller() -> None:
    assert Seller.from_settings(Settings.from_environment({}).seller) == Seller()


# UBL 2.1 XML --------------------------------------------------------------------


def parse(xml: bytes) -> ET.Element:
    return ET.fromstring(xml)


def text(root: ET.Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, f"missing {path}"
    return found.text or ""


def test_the_xml_is_a_ubl_invoice_with_the_en16931_header_fields(
    renderer: InvoiceRenderer,
) -> None:
    root = parse(renderer.render_xml(document()))
    assert root.tag == f"{{{NS['ubl']}}}Invoice"
    assert text(root, "cbc:CustomizationID") == "urn:cen.eu:en16931:2017"
    assert text(root, "cbc:ID") == "INV-00000042"
    assert text(root, "cbc:IssueDate") == "2026-01-31"
    assert text(root, "cbc:DueDate") == "2026-03-02"
    assert text(root, "cbc:InvoiceTypeCode") == "380"
    assert text(root, "cbc:DocumentCurrencyCode") == "EUR"
    assert text(root, "cac:InvoicePeriod/cbc:StartDate") == "2025-10-01"
    assert text(root, "cac:InvoicePeriod/cbc:EndDate") == "2026-01-31"


def test_the_xml_names_seller_and_buyer_with_markup_in_names_escaped(
    renderer: InvoiceRenderer,
) -> None:
    root = parse(renderer.render_xml(document()))
    supplier = "cac:AccountingSupplierParty/cac:Party"
    customer = "cac:AccountingCustomerParty/cac:Party"
    assert text(root, f"{supplier}/cac:PartyLegalEntity/cbc:RegistrationName") == Seller().name
    assert text(root, f"{supplier}/cac:PartyTaxScheme/cbc:CompanyID") == Seller().vat_id
    assert text(root, f"{supplier}/cac:PostalAddress/cac:Country/cbc:IdentificationCode") == "BE"
    assert text(root, f"{customer}/cac:PartyLegalEntity/cbc:RegistrationName") == (
        "Acme & Sons <Ltd>"
    )
    assert text(root, f"{customer}/cac:PartyIdentification/cbc:ID") == "ACME-001"


def test_the_xml_lines_carry_service_periods_and_amounts_in_the_invoice_currency(
    renderer: InvoiceRenderer,
) -> None:
    root = parse(renderer.render_xml(document()))
    lines = root.findall("cac:InvoiceLine", NS)
    assert len(lines) == 3
    second = lines[1]
    assert text(second, "cbc:ID") == "2"
    assert text(second, "cac:InvoicePeriod/cbc:StartDate") == "2025-10-01"
    assert text(second, "cac:InvoicePeriod/cbc:EndDate") == "2025-12-31"
    assert text(second, "cac:Item/cbc:Name") == "Support, Q4 2025"
    amount = second.find("cbc:LineExtensionAmount", NS)
    assert amount is not None
    assert (amount.text, amount.get("currencyID")) == ("30.50", "EUR")
    price = second.find("cac:Price/cbc:PriceAmount", NS)
    assert price is not None
    assert (price.text, price.get("currencyID")) == ("30.50", "EUR")
    for line in lines:
        quantity = line.find("cbc:InvoicedQuantity", NS)
        assert quantity is not None
        assert (quantity.text, quantity.get("unitCode")) == ("1", "C62")


def test_the_xml_totals_equal_the_sum_of_its_lines_and_carry_the_currency(
    renderer: InvoiceRenderer,
) -> None:
    root = parse(renderer.render_xml(document()))
    line_sum = sum(
        Decimal(text(line, "cbc:LineExtensionAmount"))
        for line in root.findall("cac:InvoiceLine", NS)
    )
    totals = root.find("cac:LegalMonetaryTotal", NS)
    assert totals is not None
    amounts = {}
    for name in ("LineExtensionAmount", "TaxExclusiveAmount", "TaxInclusiveAmount",
                 "PayableAmount"):  # fmt: skip
        element = totals.find(f"cbc:{name}", NS)
        assert element is not None, name
        assert element.get("currencyID") == "EUR"
        amounts[name] = Decimal(element.text or "")
    assert amounts["LineExtensionAmount"] == line_sum == Decimal("1275.75")
    assert amounts["TaxExclusiveAmount"] == line_sum
    assert amounts["TaxInclusiveAmount"] == amounts["PayableAmount"] == line_sum
    tax = root.find("cac:TaxTotal/cbc:TaxAmount", NS)
    assert tax is not None
    assert (tax.text, tax.get("currencyID")) == ("0.00", "EUR")
    category = "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory"
    assert text(root, f"{category}/cbc:ID") == "Z"
    assert text(root, f"{category}/cac:TaxScheme/cbc:ID") == "VAT"


def test_amounts_in_a_currency_without_decimals_print_without_decimals(
    renderer: InvoiceRenderer,
) -> None:
    invoice, account = invoice_of([("Licence", "48000", *JANUARY)], currency="JPY")
    root = parse(renderer.render_xml(build_invoice_document(invoice, account, Seller())))
    payable = root.find("cac:LegalMonetaryTotal/cbc:PayableAmount", NS)
    assert payable is not None
    assert (payable.text, payable.get("currencyID")) == ("48000", "JPY")


def amount(root: ET.Element, path: str, currency: str = "EUR") -> Decimal:
    found = root.find(path, NS)
    assert found is not None, f"missing {path}"
    assert found.get("currencyID") == currency, path
    return Decimal(found.text or "")


def test_the_xml_totals_and_tax_breakdown_equal_the_invoices(renderer: InvoiceRenderer) -> None:
    invoice, account = taxed_invoice()
    root = parse(renderer.render_xml(build_invoice_document(invoice, account, Seller())))
    total = "cac:LegalMonetaryTotal/cbc:"
    assert amount(root, f"{total}LineExtensionAmount") == invoice.subtotal
    assert amount(root, f"{total}TaxExclusiveAmount") == invoice.subtotal
    assert amount(root, f"{total}TaxInclusiveAmount") == invoice.total
    assert amount(root, f"{total}PayableAmount") == invoice.total
    assert amount(root, "cac:TaxTotal/cbc:TaxAmount") == invoice.tax
    lines = root.findall("cac:InvoiceLine", NS)
    assert sum(amount(line, "cbc:LineExtensionAmount") for line in lines) == invoice.subtotal

    subtotals = root.findall("cac:TaxTotal/cac:TaxSubtotal", NS)
    breakdown = [
        (
            text(sub, "cac:TaxCategory/cbc:ID"),
            Decimal(text(sub, "cac:TaxCategory/cbc:Percent")),
            amount(sub, "cbc:TaxableAmount"),
            amount(sub, "cbc:TaxAmount"),
        )
        for sub in subtotals
    ]
    assert breakdown == [
        ("S", Decimal(21), Decimal("1117.43"), Decimal("234.66")),
        ("S", Decimal(6), Decimal("96.00"), Decimal("5.76")),
    ]
    assert sum(taxable for _, _, taxable, _ in breakdown) == invoice.subtotal
    assert sum(tax for _, _, _, tax in breakdown) == invoice.tax
    for sub in subtotals:
        assert text(sub, "cac:TaxCategory/cac:TaxScheme/cbc:ID") == "VAT"
    # Each rate's taxable amount is the sum of the lines classified at that rate.
    for category, rate, taxable, _ in breakdown:
        classified = "cac:Item/cac:ClassifiedTaxCategory"
        at_rate = [
            line
            for line in lines
            if Decimal(text(line, f"{classified}/cbc:Percent")) == rate
            and text(line, f"{classified}/cbc:ID") == category
        ]
        assert sum(amount(line, "cbc:LineExtensionAmount") for line in at_rate) == taxable


def test_the_xml_lines_carry_their_tax_category_rate_and_category(
    renderer: InvoiceRenderer,
) -> None:
    zero_rated = ("Books", "charge", "charges", "1", "12.00", "12.00", "0", *JANUARY, "one-off",
                  "ACME-001")  # fmt: skip
    invoice, account = taxed_invoice([*TAXED_LINES[:6], zero_rated])
    root = parse(renderer.render_xml(build_invoice_document(invoice, account, Seller())))
    classified = "cac:Item/cac:ClassifiedTaxCategory"
    lines = root.findall("cac:InvoiceLine", NS)
    assert [
        (text(line, f"{classified}/cbc:ID"), text(line, f"{classified}/cbc:Percent"))
        for line in lines
    ] == [("S", "21")] * 5 + [("S", "6"), ("Z", "0")]
    assert all(text(line, f"{classified}/cac:TaxScheme/cbc:ID") == "VAT" for line in lines)
    assert text(lines[0], "cac:Item/cac:AdditionalItemProperty/cbc:Value") == "rent"
    categories = [
        (text(sub, "cac:TaxCategory/cbc:ID"), text(sub, "cac:TaxCategory/cbc:Percent"))
        for sub in root.findall("cac:TaxTotal/cac:TaxSubtotal", NS)
    ]
    assert categories == [("S", "21"), ("S", "6"), ("Z", "0")]


def test_an_xml_credit_line_keeps_its_negative_amount_at_a_non_negative_price(
    renderer: InvoiceRenderer,
) -> None:
    root = parse(renderer.render_xml(taxed_document()))
    credit = root.findall("cac:InvoiceLine", NS)[6]
    assert text(credit, "cac:Item/cbc:Name") == "Goodwill credit, network outage"
    assert amount(credit, "cbc:LineExtensionAmount") == Decimal("-50.00")
    assert text(credit, "cbc:InvoicedQuantity") == "-1"
    assert amount(credit, "cac:Price/cbc:PriceAmount") == Decimal("50.00")


def test_the_xml_keeps_usage_quantities_and_prices_exact_and_names_another_account(
    renderer: InvoiceRenderer,
) -> None:
    lines = parse(renderer.render_xml(taxed_document())).findall("cac:InvoiceLine", NS)
    assert text(lines[3], "cbc:InvoicedQuantity") == "1234.500"
    assert text(lines[3], "cac:Price/cbc:PriceAmount") == "0.0125"
    assert lines[0].find("cbc:Note", NS) is None
    assert text(lines[7], "cbc:Note") == "for ACME-002"


# HTML ---------------------------------------------------------------------------


def test_the_html_shows_seller_buyer_dates_lines_and_totals_escaped(
    renderer: InvoiceRenderer,
) -> None:
    html = renderer.render_html(document())
    for expected in (
        "Billrun Demo Ltd",
        "BE0123456749",
        "BE71 0961 2345 6769",
        "Acme &amp; Sons &lt;Ltd&gt;",
        "INV-00000042",
        "31 January 2026",
        "2 March 2026",
        "Private office",
        "1 Oct 2025 – 31 Dec 2025",
        "1,200.00",
        "1,275.75",
    ):
        assert expected in html, expected
    assert "<Ltd>" not in html


def test_the_html_shows_rates_a_tax_breakdown_credits_and_exact_usage_figures(
    renderer: InvoiceRenderer,
) -> None:
    html = renderer.render_html(taxed_document())
    for expected in (
        "1,234.5<",  # usage quantity without trailing zeros
        "0.0125<",  # unit price with every decimal it was priced with
        "0.085<",
        "-50.00<",  # the credit, negative
        "credit<",
        "21%<",
        "6%<",
        "1,117.43<",  # the 21 % breakdown: net amount and tax
        "234.66<",
        "5.76<",
        "240.42<",
        "EUR 1,453.85<",
        "prorated: 17 of 31 days",
        "for ACME-002",
        "22 Jan 2026<",  # a one-day service period prints one date
    ):
        assert expected in html, expected
    assert "1,234.500" not in html
    assert "for ACME-001" not in html
    assert 'class="taxes"' in html


def test_an_invoice_without_tax_prints_its_rate_but_no_breakdown(
    renderer: InvoiceRenderer,
) -> None:
    html = renderer.render_html(document())
    assert 'class="taxes"' not in html
    assert "Tax (0%)" in html


def test_an_invoice_whose_credits_exceed_its_charges_prints_a_negative_total(
    renderer: InvoiceRenderer,
) -> None:
    credit = ("Refund", "charge", "charges", "1", "-500.00", "-500.00", "21", *JANUARY, "one-off",
              "ACME-001")  # fmt: skip
    invoice, account = taxed_invoice([TAXED_LINES[2], credit])
    html = renderer.render_html(build_invoice_document(invoice, account, Seller()))
    assert invoice.total == Decimal("-387.20")  # 180.00 - 500.00, plus 21 %
    assert "Total credit" in html
    assert "EUR -387.20" in html


def test_an_eight_line_invoice_at_two_tax_rates_is_one_page(renderer: InvoiceRenderer) -> None:
    doc = taxed_document()
    assert len(doc.lines) == 8
    assert len(doc.tax_breakdown) == 2
    assert len(renderer.layout(doc).pages) == 1


def test_eight_lines_each_with_a_detail_line_at_three_rates_still_fit_one_page(
    renderer: InvoiceRenderer,
) -> None:
    # The family invoice's worst usual case: every line for another account and
    # prorated, so every description has its grey second line.
    rates = ("21", "6", "0")
    lines = [
        (description, kind, category, quantity, unit, amount, rates[i % 3], date(2026, 1, 15),
         date(2026, 1, 31), "recurring:monthly:advance:prorated:17/31", f"ACME-{i + 2:03d}")
        for i, (description, kind, category, quantity, unit, amount, *_) in enumerate(TAXED_LINES)
    ]  # fmt: skip
    doc = build_invoice_document(*taxed_invoice(lines), Seller())
    assert all(line.for_account and line.proration for line in doc.lines)
    assert len(renderer.layout(doc).pages) == 1


def test_standalone_html_carries_its_stylesheet(renderer: InvoiceRenderer) -> None:
    assert "<style>" not in renderer.render_html(document())
    assert "@page" in renderer.render_html(document(), standalone=True)


def test_rendering_fetches_nothing_from_outside(tmp_path: Path) -> None:
    from weasyprint.urls import FatalURLFetchingError

    shutil.copytree(TEMPLATES, tmp_path, dirs_exist_ok=True)
    html = tmp_path / "invoice.html.j2"
    html.write_text(
        html.read_text().replace("<body>", '<body><img src="http://example.com/logo.png">')
    )
    with pytest.raises(FatalURLFetchingError, match=r"example\.com/logo\.png"):
        InvoiceRenderer(templates=tmp_path).render_pdf(document())


# Email templates ----------------------------------------------------------------


def test_a_bill_groups_own_template_is_rendered_with_the_invoice_names() -> None:
    templates = EmailTemplates()
    body = templates.render_text(
        "email_body.txt.j2",
        "Hello {{ account_name }}: {{ number }}",
        {"account_name": "Acme", "number": "INV-00000042"},
    )
    assert body == "Hello Acme: INV-00000042"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ no_such_name }}", "undefined"),
        ("{% if %}", "cannot be rendered"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ],
)
def test_a_broken_or_unsafe_group_template_is_refused_with_a_reason(
    source: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        EmailTemplates().render_text("email_body.txt.j2", source, {"number": "INV-1"})


# The store and the mail adapters ------------------------------------------------


def test_documents_are_stored_by_their_hash_and_storing_them_again_is_harmless(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path)
    first = store.put(b"%PDF-1.7 invoice", "pdf")
    digest = hashlib.sha256(b"%PDF-1.7 invoice").hexdigest()
    assert first.sha256 == digest
    assert first.location == f"{digest[:2]}/{digest}.pdf"
    assert first.size == 16
    assert store.put(b"%PDF-1.7 invoice", "pdf") == first
    assert store.get(first.location) == b"%PDF-1.7 invoice"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{digest}.pdf"]


@pytest.mark.parametrize("location", ["../etc/passwd", "ab/cd.pdf", "/tmp/x.pdf"])
def test_the_store_refuses_locations_that_are_not_its_own(tmp_path: Path, location: str) -> None:
    with pytest.raises(ValueError, match="not a document location"):
        FileStore(tmp_path).get(location)


def test_an_outbox_message_is_one_file_named_by_its_message_id(tmp_path: Path) -> None:
    message = EmailMessage()
    message["Message-ID"] = "<invoice-1234@billrun>"
    message["Subject"] = "Invoice"
    message.set_content("Hello\n")
    outbox = OutboxChannel(tmp_path)
    first = outbox.send(message)
    assert outbox.send(message) == first == str(tmp_path / "invoice-1234@billrun.eml")
    assert [p.name for p in tmp_path.iterdir()] == ["invoice-1234@billrun.eml"]
    assert b"\r\n" in Path(first).read_bytes()  # RFC 5322 line endings


def test_file_names_from_message_ids_contain_nothing_unsafe() -> None:
    assert eml_name("<../../etc/passwd@x>") == "_.._etc_passwd@x.eml"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://127.0.0.1:1025", ("smtp", "127.0.0.1", 1025, None)),
        ("smtps://mail.example.com", ("smtps", "mail.example.com", 465, None)),
        ("smtp+starttls://bill%40x:s3cret@mx:2525", ("smtp+starttls", "mx", 2525, "bill@x")),
    ],
)
def test_the_smtp_url_gives_the_server(url: str, expected: tuple[object, ...]) -> None:
    server = SmtpServer.from_url(url)
    assert (server.scheme, server.host, server.port, server.username) == expected
    assert "s3cret" not in str(server)


@pytest.mark.parametrize("url", ["http://x", "smtp://", "smtp://h:port"])
def test_a_bad_smtp_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="BILLRUN_SMTP_URL"):
        SmtpServer.from_url(url)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ 'x' * 50000000 }}", "a repetition above 200000"),
        ("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", "writes more than 200000"),
        ("{{ 'x'.ljust(n) }}", "a size above 200000"),
        ("{{ 2 ** n }}", "a power above 64"),
        ("{{ '%0500000d' % 1 }}", "% formatting of text"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
         "more than 2 s of CPU time"),
    ],
)  # fmt: skip
def test_a_group_template_is_refused_beyond_its_cpu_and_output_budget(
    source: str, problem: str
) -> None:
    started = time.process_time()
    with pytest.raises(ValueError, match=problem):
        EmailTemplates().render_text(
            "email_body.txt.j2", source, {"number": "INV-1", "n": 50_000_000}
        )
    assert time.process_time() - started < 5


def test_the_sellers_e_invoice_settings_are_read_and_the_demos_ids_never_lent_to_another() -> None:
    from infrastructure.settings import SellerSettings

    configured = Seller.from_settings(
        SellerSettings.from_environment(
            {
                "BILLRUN_SELLER_NAME": "Acme Billing SA",
                "BILLRUN_SELLER_CITY": "Liège",
                "BILLRUN_SELLER_ENDPOINT": "9925:BE0477472701",
                "BILLRUN_SELLER_BANK_ACCOUNTS": (
                    "usd=US64SVBKUS6S3300958879/SVBKUS6S; GBP=GB33BUKB20201555555555"
                ),
            }
        )
    )
    assert (configured.city, configured.street, configured.company_id) == ("Liège", None, None)
    assert (configured.endpoint_scheme, configured.endpoint_id, configured.peppol) == (
        "9925", "BE0477472701", True,
    )  # fmt: skip
    assert configured.bank_accounts == (
        ("USD", "US64SVBKUS6S3300958879", "SVBKUS6S"),
        ("GBP", "GB33BUKB20201555555555", None),
    )
    unnamed = Seller.from_settings(SellerSettings.from_environment({"BILLRUN_SELLER_CITY": "Gent"}))
    assert (unnamed.city, unnamed.endpoint_id, unnamed.peppol) == ("Gent", "0123456749", True)
    named = Seller.from_settings(SellerSettings.from_environment({"BILLRUN_SELLER_NAME": "X"}))
    assert (named.endpoint_id, named.peppol, named.city) == (None, False, None)
    for variable, value in (
        ("BILLRUN_SELLER_ENDPOINT", "0208"),
        ("BILLRUN_SELLER_PEPPOL", "maybe"),
        ("BILLRUN_SELLER_BANK_ACCOUNTS", "dollars=US64"),
    ):
        with pytest.raises(ConfigurationError, match=variable):
            SellerSettings.from_environment({variable: value})
