"""Rendering billed invoices against real PostgreSQL: each format is rendered,
stored by its hash and recorded once, however often rendering is asked for,
and even when two renderers race on the same invoice."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from application.billing.transactions import ChargeInput, UsageInput, add_charges, record_usage
from application.invoicing.documents import (
    InvoiceDocuments,
    InvoiceNotClosed,
    UnknownDocumentFormat,
)
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.ports import InvoiceDocument, Seller
from domain.billing.terms import ChargeTerms
from domain.invoicing.events import InvoiceRendered
from domain.invoicing.invoice import Invoice
from domain.runs.settings import RunSettings, Selection
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from infrastructure.file_store import FileStore
from infrastructure.rendering.renderer import InvoiceRenderer
from tests.conftest import account, import_accounts, package
from tests.integration.helpers import EventLog, billing_on

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
UBL = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


class CountingRenderer:
    """The real renderer, counting what it is asked to render."""

    def __init__(self) -> None:
        self.inner = InvoiceRenderer()
        self.calls: list[str] = []

    def render_pdf(self, document: InvoiceDocument) -> bytes:
        self.calls.append("pdf")
        return self.inner.render_pdf(document)

    def render_xml(self, document: InvoiceDocument) -> bytes:
        self.calls.append("xml")
        return self.inner.render_xml(document)


@pytest.fixture
def billed(billing: Billing) -> UUID:
    """The closed January invoice of ACME-001 (two lines)."""
    import_accounts(
        billing,
        account("ACME-001", package("office", "1200.00"), package("mail", "45.50")),
    )
    schedule_run(billing, "2026-01", JANUARY, None, Selection())
    BillRunExecutor(billing, batch_size=10).execute("2026-01")
    return invoice_uuid("2026-01", "ACME-001")


@pytest.fixture
def taxed(billing: Billing) -> UUID:
    """The closed January invoice of TAX-001, billed by a real run: an office at
    the account's 21 %, catering at 6 %, usage priced finer than the currency,
    and a credit."""
    import_accounts(
        billing, account("TAX-001", package("office", "1200.00"), package("catering", "96.00"))
    )
    found = billing.get_account("TAX-001")
    found.change_details(
        found.name, found.invoice_email, found.bill_group, billing.clock(), tax_rate=Decimal(21)
    )
    catering = found.packages["catering"].terms
    found.revise_package(
        catering.model_copy(update={"tax_rate": Decimal(6), "category": "food"}), billing.clock()
    )
    billing.save(found)
    record_usage(
        billing,
        [
            UsageInput(
                "usage 1",
                "TAX-001",
                "calls-1",
                "office",
                Decimal("1000"),
                date(2026, 1, 5),
                Decimal("0.0125"),
                "Phone calls",
            ),
            UsageInput(
                "usage 2",
                "TAX-001",
                "calls-2",
                "office",
                Decimal("234.5"),
                date(2026, 1, 19),
                Decimal("0.0125"),
                "Phone calls",
            ),
        ],
        "test",
    )
    goodwill = ChargeTerms(
        charge_id="goodwill",
        description="Goodwill credit",
        amount=Decimal("-50.00"),
        charge_date=date(2026, 1, 12),
    )
    add_charges(billing, [ChargeInput("charge 1", "TAX-001", goodwill)], "test")
    schedule_run(billing, "2026-01", JANUARY, None, Selection())
    BillRunExecutor(billing, batch_size=10).execute("2026-01")
    return invoice_uuid("2026-01", "TAX-001")


@pytest.fixture
def renderer() -> CountingRenderer:
    return CountingRenderer()


@pytest.fixture
def documents(billing: Billing, renderer: CountingRenderer, tmp_path: Path) -> InvoiceDocuments:
    return InvoiceDocuments(billing, renderer, FileStore(tmp_path / "documents"), Seller())


def test_rendering_a_billed_invoice_records_a_pdf_and_an_xml_stored_under_their_hashes(
    documents: InvoiceDocuments, billed: UUID, log: EventLog, tmp_path: Path
) -> None:
    rendered = documents.render(billed)

    assert [d.format for d in rendered] == ["pdf", "xml"]
    recorded = log.states(InvoiceRendered)
    assert sorted(s["format"] for s in recorded) == ["pdf", "xml"]
    assert {s["originator_id"] for s in recorded} == {billed}
    for document in rendered:
        path = tmp_path / "documents" / document.location
        content = path.read_bytes()
        assert hashlib.sha256(content).hexdigest() == document.sha256
        assert len(content) == document.size
        assert path.name == f"{document.sha256}.{document.format}"
    pdf = (tmp_path / "documents" / rendered[0].location).read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert b"<cbc:ID>INV-00000001</cbc:ID>" in documents.content(rendered[1])


def test_rendering_again_renders_and_records_nothing_new(
    documents: InvoiceDocuments, renderer: CountingRenderer, billed: UUID, log: EventLog
) -> None:
    first = documents.render(billed)
    events = log.total()

    again = documents.render(billed)

    assert again == first
    assert log.total() == events
    assert log.count(InvoiceRendered) == 2
    assert renderer.calls == ["pdf", "xml"]


def test_only_the_formats_not_yet_recorded_are_rendered(
    documents: InvoiceDocuments, renderer: CountingRenderer, billed: UUID, log: EventLog
) -> None:
    (xml,) = documents.render(billed, ["xml"])
    both = documents.render(billed, ["pdf", "xml"])

    assert renderer.calls == ["xml", "pdf"]
    assert both[1] == xml
    assert log.count(InvoiceRendered) == 2


def test_the_same_invoice_renders_to_the_same_bytes(billing: Billing, billed: UUID) -> None:
    # No creation time or random id inside: a re-render after a crash between
    # storing and recording finds the very same file.
    document = InvoiceDocuments(billing, InvoiceRenderer(), FileStore(Path()), Seller()).document(
        billed
    )
    first, second = InvoiceRenderer(), InvoiceRenderer()
    assert first.render_pdf(document) == second.render_pdf(document)
    assert first.render_xml(document) == second.render_xml(document)


def test_two_renderers_racing_on_one_invoice_record_each_format_once(
    billing: Billing, database_url: str, billed: UUID, log: EventLog, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "documents")
    with billing_on(database_url) as other_app:
        other = InvoiceDocuments(other_app, InvoiceRenderer(), store, Seller())

        class Interleaving(CountingRenderer):
            def render_pdf(self, document: InvoiceDocument) -> bytes:
                # The other renderer records the XML while this one holds a stale
                # invoice: this one's save conflicts, reloads, and records only the PDF.
                other.render(billed, ["xml"])
                return super().render_pdf(document)

        racing = Interleaving()
        rendered = InvoiceDocuments(billing, racing, store, Seller()).render(billed)

    assert [d.format for d in rendered] == ["pdf", "xml"]
    assert sorted(s["format"] for s in log.states(InvoiceRendered)) == ["pdf", "xml"]
    assert racing.calls == ["pdf", "xml"]  # its own XML was stored but never recorded
    assert billing.get_invoice(billed).documents["xml"] == rendered[1]


def test_an_open_invoice_or_an_unknown_format_is_refused_and_nothing_is_recorded(
    billing: Billing, documents: InvoiceDocuments, log: EventLog
) -> None:
    import_accounts(billing, account("OPEN-001", package("office")))
    invoice = Invoice.open("2026-01", "OPEN-001", "EUR", date(2026, 1, 31), billing.clock())
    billing.save(invoice)

    with pytest.raises(InvoiceNotClosed):
        documents.render(invoice.id)
    with pytest.raises(UnknownDocumentFormat, match="docx"):
        documents.render(invoice.id, ["pdf", "docx"])
    assert log.count(InvoiceRendered) == 0


def test_on_close_a_run_that_does_not_render_leaves_rendering_to_first_access(
    billing: Billing, documents: InvoiceDocuments, log: EventLog
) -> None:
    import_accounts(billing, account("LAZY-001", package("office")))
    settings = RunSettings(render_invoices=False, deliver_invoices=False)
    schedule_run(billing, "lazy", JANUARY, None, Selection(), settings)
    BillRunExecutor(billing, batch_size=10).execute("lazy")
    invoice_id = invoice_uuid("lazy", "LAZY-001")

    assert documents.render_on_close(invoice_id) == []
    assert log.count(InvoiceRendered) == 0
    (pdf,) = documents.render(invoice_id, ["pdf"])  # `billrun invoice pdf`
    assert pdf.format == "pdf"
    assert log.count(InvoiceRendered) == 1


def test_on_close_a_run_that_renders_renders_every_format(
    documents: InvoiceDocuments, billed: UUID
) -> None:
    assert [d.format for d in documents.render_on_close(billed)] == ["pdf", "xml"]


def test_a_billed_invoice_with_two_tax_rates_usage_and_a_credit_renders_its_own_totals(
    billing: Billing, documents: InvoiceDocuments, taxed: UUID
) -> None:
    _pdf, xml = documents.render(taxed)
    invoice = billing.get_invoice(taxed)
    root = ET.fromstring(documents.content(xml))

    def amount(element: ET.Element, path: str) -> Decimal:
        found = element.find(path, UBL)
        assert found is not None, path
        assert found.get("currencyID") == "EUR"
        return Decimal(found.text or "")

    lines = root.findall("cac:InvoiceLine", UBL)
    assert len(lines) == len(invoice.lines) == 4
    assert sum(amount(line, "cbc:LineExtensionAmount") for line in lines) == invoice.subtotal
    totals = "cac:LegalMonetaryTotal/cbc:"
    assert amount(root, f"{totals}LineExtensionAmount") == invoice.subtotal
    assert amount(root, f"{totals}TaxExclusiveAmount") == invoice.subtotal
    assert amount(root, f"{totals}TaxInclusiveAmount") == invoice.total
    assert amount(root, f"{totals}PayableAmount") == invoice.total
    assert amount(root, "cac:TaxTotal/cbc:TaxAmount") == invoice.tax != 0
    subtotals = root.findall("cac:TaxTotal/cac:TaxSubtotal", UBL)
    assert [sub.findtext("cac:TaxCategory/cbc:Percent", namespaces=UBL) for sub in subtotals] == [
        "21",
        "6",
    ]
    assert sum(amount(sub, "cbc:TaxAmount") for sub in subtotals) == invoice.tax
    assert sum(amount(sub, "cbc:TaxableAmount") for sub in subtotals) == invoice.subtotal
    by_name = {line.findtext("cac:Item/cbc:Name", namespaces=UBL): line for line in lines}
    assert amount(by_name["Goodwill credit"], "cbc:LineExtensionAmount") == Decimal("-50.00")
    calls = by_name["Phone calls"]
    assert calls.findtext("cbc:InvoicedQuantity", namespaces=UBL) == "1234.5"
    assert calls.findtext("cac:Price/cbc:PriceAmount", namespaces=UBL) == "0.0125"
    assert amount(calls, "cbc:LineExtensionAmount") == Decimal("15.43")

    document = documents.document(taxed)
    assert sum(t.tax for t in document.tax_breakdown) == invoice.tax
    assert len(InvoiceRenderer().layout(document).pages) == 1
