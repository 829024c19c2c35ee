"""Credit notes against real PostgreSQL: a numbered document of its own (a gapless
sequence apart from invoices), posted to the account's receivables in the same
transaction, rendered to a PDF and a UBL CreditNote and delivered by the file
channel like an invoice; never more than the invoice, even when two race."""

from __future__ import annotations

import asyncio
import email
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from application.billing.import_document import parse_import
from application.billing.importing import import_accounts
from application.invoicing.credit_notes import CreditOutcome, CreditRefused, credit_invoice
from application.invoicing.delivery import OutcomeKind
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.invoicing.credit_notes import CreditTerms
from domain.invoicing.documents import DocumentType
from domain.invoicing.events import InvoiceCredited, InvoiceNumbersReserved, InvoiceOpened
from domain.invoicing.invoice import Invoice
from domain.invoicing.invoice_numbers import InvoiceNumberSequence
from domain.receivables.allocation import PaymentStatus
from domain.receivables.events import CreditNotePosted
from domain.runs.settings import RunSettings, Selection
from domain.shared.errors import InvoiceError
from domain.shared.ids import CREDIT_NOTE_NUMBER_SEQUENCE_ID, invoice_uuid
from domain.shared.periods import Period
from entrypoints.runtime import Runtime
from infrastructure.messaging import StreamNames
from infrastructure.settings import Settings
from infrastructure.topics import topic_of
from tests.conftest import SteppingClock, account, package
from tests.integration.helpers import EventLog, FileDeliveryWorld, billing_on
from tests.integration.test_consumers import event_count, work_until

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))
D = Decimal
UBL = {
    "cn": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


def taxed(account_id: str, *packages: dict[str, Any], rate: str = "21") -> dict[str, Any]:
    return account(account_id, *packages, bill_group="paper") | {"tax_rate": rate}


class World(FileDeliveryWorld):
    """Billing, documents and delivery by the file channel, and the read side."""

    def import_accounts(self, *accounts: dict[str, Any]) -> None:
        document = {"bill_groups": [{"id": "paper", "delivery": "file"}], "accounts": accounts}
        raw = json.dumps(document).encode()
        import_accounts(self.billing, parse_import(raw, "test.json"), "test.json")

    def bill(self, run_id: str, period: Period = JANUARY, approve: bool = True) -> None:
        settings = RunSettings(render_invoices=True, deliver_invoices=True)
        schedule_run(self.billing, run_id, period, None, Selection(), settings)
        BillRunExecutor(self.billing, batch_size=5).execute(run_id)
        if approve:
            for invoice in self.billing.load_many(
                Invoice,
                self.billing.queries.originators_with([topic_of(InvoiceOpened)], "run_id", run_id),
            ).values():
                invoice.approve(self.billing.clock())
                self.billing.save(invoice)

    def invoice(self, run_id: str, account_id: str) -> Invoice:
        return self.billing.get_invoice(invoice_uuid(run_id, account_id))

    def credit(
        self, invoice: Invoice, amount: str | None = None, reason: str = "outage", **kw: Any
    ) -> CreditOutcome:
        terms = CreditTerms(
            reason=reason,
            amount=None if amount is None else D(amount),
            tax_rate=kw.pop("rate", None),
        )
        return credit_invoice(self.billing, invoice.id, terms, **kw)


@pytest.fixture
def world(billing: Billing, es_env: dict[str, str], tmp_path: Path) -> Iterator[World]:
    opened = World(billing, es_env, tmp_path)
    yield opened
    opened.read_side.close()


# Numbers and receivables ------------------------------------------------------------


def test_credit_notes_are_numbered_by_their_own_gapless_sequence_and_post_to_receivables(
    world: World, log: EventLog
) -> None:
    world.import_accounts(
        taxed("FULL", package("office", "100.00")), taxed("PART", package("office", "200.00"))
    )
    world.bill("2026-01")
    full, part = world.invoice("2026-01", "FULL"), world.invoice("2026-01", "PART")
    assert (full.display_number, part.display_number) == ("INV-00000001", "INV-00000002")

    first = world.credit(full, reason="ordered by mistake")
    refused_events = log.total()
    with pytest.raises(InvoiceError, match="would exceed its total"):
        world.credit(part, "300.00")
    assert log.total() == refused_events, "a refused credit writes nothing, consumes no number"
    second = world.credit(part, "50.00")

    assert (first.credit_note.display_number, second.credit_note.display_number) == (
        "CN-00000001", "CN-00000002",
    )  # fmt: skip
    assert (first.amount, second.amount) == (D("121.00"), D("60.50"))
    sequence = world.billing.load_many(InvoiceNumberSequence, [CREDIT_NOTE_NUMBER_SEQUENCE_ID])
    assert sequence[CREDIT_NOTE_NUMBER_SEQUENCE_ID].last_number == 2
    assert world.billing.get_invoice_sequence().last_number == 2, "invoice numbers untouched"
    reserved = [(s["first"], s["count"]) for s in log.states(InvoiceNumbersReserved)]
    assert reserved == [(1, 2), (1, 1), (2, 1)]  # the run's invoices, then CN 1 and CN 2

    # Posted in the same transaction: the credit pays the corrected invoice first.
    receivables = world.billing.get_receivables("FULL")
    assert receivables.items[full.id].status() is PaymentStatus.PAID
    assert (receivables.balance, receivables.credit) == (D("0.00"), D("0.00"))
    receivables = world.billing.get_receivables("PART")
    assert receivables.items[part.id].open_amount == D("181.50")
    assert receivables.balance == D("181.50")
    posted = log.states(CreditNotePosted)
    assert [(s["number"], s["amount"]) for s in posted] == [
        ("CN-00000001", "121.00"), ("CN-00000002", "60.50"),
    ]  # fmt: skip
    credited = log.states(InvoiceCredited)
    assert [(s["originator_id"], s["total"]) for s in credited] == [
        (full.id, "121.00"), (part.id, "60.50"),
    ]  # fmt: skip
    assert world.billing.get_invoice(part.id).creditable_total == D("181.50")


def test_crediting_a_paid_invoice_leaves_a_credit_balance_the_next_invoice_uses(
    world: World,
) -> None:
    world.import_accounts(taxed("PAID", package("office", "100.00")))
    world.bill("2026-01")
    invoice = world.invoice("2026-01", "PAID")
    receivables = world.billing.get_receivables("PAID")
    receivables.receive_payment("bank-1", D("121.00"), date(2026, 2, 3), world.billing.clock())
    world.billing.save(receivables)

    outcome = world.credit(invoice, "20.00", reason="two days of outage")

    assert outcome.receivables is not None
    assert (outcome.receivables.credit, outcome.receivables.balance) == (D("24.20"), D("-24.20"))
    world.bill("2026-02", FEBRUARY)
    february = world.billing.get_receivables("PAID")
    assert february.items[world.invoice("2026-02", "PAID").id].allocated == D("24.20")
    assert (february.credit, february.balance) == (D("0.00"), D("96.80"))


# Idempotence, refusals, races ---------------------------------------------------------------


def test_the_same_credit_asked_twice_issues_one_credit_note_and_another_id_another(
    world: World, log: EventLog
) -> None:
    world.import_accounts(taxed("TWICE", package("office", "100.00")))
    world.bill("2026-01")
    invoice = world.invoice("2026-01", "TWICE")

    first = world.credit(invoice, "10.00")
    events = log.total()
    again = world.credit(invoice, "10.00", reason=" outage ")

    assert (first.created, again.created) == (True, False)
    assert again.credit_note.id == first.credit_note.id
    assert log.total() == events
    other = world.credit(invoice, "10.00", key="goodwill-2")
    assert (other.created, other.credit_note.display_number) == (True, "CN-00000002")
    with pytest.raises(
        CreditRefused, match="--id 'goodwill-2' already issued credit note CN-00000002"
    ):
        world.credit(invoice, "11.00", key="goodwill-2")
    assert world.billing.get_invoice(invoice.id).credited_total == D("24.20")


def test_a_draft_is_refused_with_what_to_do_instead_and_nothing_is_written(
    world: World, log: EventLog
) -> None:
    world.import_accounts(taxed("DRAFT", package("office", "100.00")))
    world.bill("2026-01", approve=False)
    events = log.total()

    with pytest.raises(InvoiceError, match=r"is draft.*cancelled \(billrun invoice cancel"):
        world.credit(world.invoice("2026-01", "DRAFT"))

    assert log.total() == events


def test_two_credits_racing_on_one_invoice_never_take_more_than_it(
    world: World, database_url: str, log: EventLog
) -> None:
    world.import_accounts(taxed("RACE", package("office", "100.00")))
    world.bill("2026-01")
    invoice = world.invoice("2026-01", "RACE")
    clock = SteppingClock()
    raced = False

    def interleaving_clock() -> Any:
        # Read after this side loaded the invoice: the other side credits it first.
        nonlocal raced
        if not raced:
            raced = True
            terms = CreditTerms(reason="first", amount=D("70.00"))
            credit_invoice(world.billing, invoice.id, terms)
        return clock()

    refused = pytest.raises(InvoiceError, match=r"EUR 36.30 of 121.00 remains creditable")
    with billing_on(database_url, clock=interleaving_clock) as other, refused:
        credit_invoice(other, invoice.id, CreditTerms(reason="second", amount=D("70.00")))

    assert raced
    stored = world.billing.get_invoice(invoice.id)
    assert [c.reason for c in stored.credits.values()] == ["first"]
    assert log.count(CreditNotePosted) == 1
    sequence = world.billing.load_many(InvoiceNumberSequence, [CREDIT_NOTE_NUMBER_SEQUENCE_ID])
    assert sequence[CREDIT_NOTE_NUMBER_SEQUENCE_ID].last_number == 1


# Documents and delivery -----------------------------------------------------------------------


def test_a_credit_note_renders_a_pdf_and_a_ubl_credit_note_and_goes_out_by_the_file_channel(
    world: World,
) -> None:
    world.import_accounts(taxed("DOCS", package("office", "100.00"), package("mail", "45.50")))
    world.bill("2026-01")
    invoice = world.invoice("2026-01", "DOCS")
    note = world.credit(invoice, reason="moved out").credit_note

    # What the render consumer calls on the credit note's InvoiceClosed.
    pdf, xml = world.documents.render_on_close(note.id)
    assert world.documents.content(pdf).startswith(b"%PDF-")
    root = ET.fromstring(world.documents.content(xml))
    assert root.tag == f"{{{UBL['cn']}}}CreditNote"
    assert root.findtext("cbc:ID", namespaces=UBL) == "CN-00000001"
    assert root.findtext("cbc:CreditNoteTypeCode", namespaces=UBL) == "381"
    reference = "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID"
    assert root.findtext(reference, namespaces=UBL) == "INV-00000001"
    payable = root.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=UBL)
    assert D(payable or "") == invoice.total == D("176.06")
    assert len(root.findall("cac:CreditNoteLine", UBL)) == 2

    # What the deliver consumer calls on its InvoiceRendered(pdf).
    outcome = world.delivery.deliver(note.id)
    assert (outcome.kind, outcome.first_invoice) == (OutcomeKind.DELIVERED, False)
    assert world.delivery.deliver(note.id).kind is OutcomeKind.ALREADY_DELIVERED
    (eml,) = [f for f in world.outbox.iterdir() if str(note.id) in f.name]
    message = email.message_from_bytes(eml.read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Credit note CN-00000001 from Billrun Demo Ltd"
    body = message.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    assert "It corrects invoice INV-00000001" in body.get_content()
    assert "Reason:          moved out" in body.get_content()
    names = {part.get_filename() for part in message.iter_attachments()}
    assert names == {"CN-00000001.pdf", "CN-00000001.xml"}


def test_the_worker_renders_and_delivers_a_credit_note_as_it_does_an_invoice(
    world: World,
    es_env: dict[str, str],
    database_url: str,
    nats_server: str,
    streams: StreamNames,
    tmp_path: Path,
) -> None:
    settings = Settings(
        database_url=database_url, nats_url=nats_server, home=tmp_path, batch_size=100
    )
    runtime = Runtime(settings, es_env, world.billing)
    world.import_accounts(taxed("WORK", package("office", "100.00")))
    world.bill("2026-01", approve=False)  # a draft: delivered once rendered (no approval)

    def delivered(count: int) -> bool:
        return event_count(world.billing, "InvoiceDelivered") == count

    asyncio.run(work_until(runtime, nats_server, streams, lambda: delivered(1)))
    invoice = world.invoice("2026-01", "WORK")
    assert invoice.delivery is not None, "a delivered draft is issued: it is credited"
    note = world.credit(invoice, reason="never used").credit_note

    asyncio.run(work_until(runtime, nats_server, streams, lambda: delivered(2)))

    sent = world.billing.get_invoice(note.id)
    assert set(sent.documents) == {"pdf", "xml"}
    assert sent.delivery is not None and sent.delivery.channel == "file"
    assert sent.delivery.location is not None
    message = email.message_from_bytes(Path(sent.delivery.location).read_bytes())
    assert message["Subject"] == "Credit note CN-00000001 from Billrun Demo Ltd"
    assert event_count(world.billing, "InvoiceRendered") == 4


def test_the_invoice_documents_print_its_own_due_date(world: World) -> None:
    document = {
        "bill_groups": [{"id": "paper", "delivery": "file", "payment_terms_days": 14}],
        "accounts": [account("TERMS", package("office", "100.00"), bill_group="paper")],
    }
    import_accounts(world.billing, parse_import(json.dumps(document).encode(), "t.json"), "t.json")
    world.bill("2026-01")
    invoice = world.invoice("2026-01", "TERMS")

    assert invoice.posting_date is not None
    assert invoice.due_date == invoice.posting_date + timedelta(days=14)
    doc = world.documents.document(invoice.id)
    assert doc.due_date == invoice.due_date
    _pdf, xml = world.documents.render(invoice.id)
    assert ET.fromstring(world.documents.content(xml)).findtext(
        "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}DueDate"
    ) == str(invoice.due_date)


# The read side ---------------------------------------------------------------------------------


def test_credit_notes_are_listed_by_run_and_account_numbered_apart_from_invoices(
    world: World,
) -> None:
    world.import_accounts(
        taxed("LIST", package("office", "100.00")), taxed("OTHER", package("office", "80.00"))
    )
    world.bill("2026-01")
    invoice = world.invoice("2026-01", "LIST")
    report_before = world.read_side.fresh_run_report().report("2026-01")
    note = world.credit(invoice, "10.00").credit_note

    view = world.read_side.fresh_invoices()
    by_run = list(view.search(run_id="2026-01"))
    assert [(r.display_number, r.document_type) for r in by_run] == [
        ("INV-00000001", "invoice"), ("INV-00000002", "invoice"), ("CN-00000001", "credit_note"),
    ]  # fmt: skip
    (row,) = [r for r in view.search(account_id="LIST") if r.document_type == "credit_note"]
    assert (row.id, row.corrects, row.total, row.review_status) == (
        note.id, invoice.id, D("-12.10"), "approved",
    )  # fmt: skip
    assert row.as_json()["document_type"] == "credit_note"
    assert view.id_of_number(1, DocumentType.CREDIT_NOTE) == note.id
    assert view.id_of_number(1) == invoice.id
    # A credit note issued later is not the run's billing: its report is unchanged.
    assert world.read_side.fresh_run_report().report("2026-01") == report_before
