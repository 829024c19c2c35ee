"""Delivering rendered invoices against real PostgreSQL and a real local SMTP
server (aiosmtpd): each invoice goes out once, by its bill group's channel,
with the PDF and XML attached and a Message-ID that is the same every time."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from aiosmtpd.controller import Controller

from application.billing.import_document import parse_import
from application.billing.importing import import_accounts
from application.invoicing.delivery import (
    DeliveryOutcome,
    InvoiceDelivery,
    OutcomeKind,
    invoice_message_id,
)
from application.invoicing.documents import InvoiceDocuments
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.messages import ChannelUnavailable, DeliveryRefused
from application.shared.ports import MailChannel, Seller
from domain.invoicing.events import InvoiceDelivered
from domain.runs.settings import RunSettings, Selection
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from infrastructure.file_store import FileStore
from infrastructure.mail import OutboxChannel, SmtpChannel, SmtpServer
from infrastructure.rendering.renderer import EmailTemplates, InvoiceRenderer
from tests.conftest import account, package
from tests.integration.helpers import EventLog

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))

GROUPS = [
    {"id": "mail", "delivery": "email"},
    {"id": "paper", "delivery": "file"},
    {"id": "silent", "delivery": "none"},
    {
        "id": "custom",
        "delivery": "email",
        "email_subject": "Your bill {{ number }}",
        "email_template": "REGULAR {{ number }} for {{ account_name }}",
        "first_invoice_email_template": "WELCOME {{ account_name }}, here is {{ number }}",
    },
    {"id": "broken", "delivery": "email", "email_template": "{{ no_such_name }}"},
]


# A real SMTP server -------------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    port: int = 0
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    handler = Inbox(port=free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


# The scenario -------------------------------------------------------------------


class Billed:
    """Billing, documents and delivery wired as in production, with this test's
    SMTP server, document store and outbox."""

    def __init__(self, billing: Billing, home: Path, smtp_port: int | None) -> None:
        self.billing = billing
        self.outbox = home / "outbox"
        store = FileStore(home / "documents")
        self.documents = InvoiceDocuments(billing, InvoiceRenderer(), store, Seller())
        channels: dict[str, MailChannel] = {"file": OutboxChannel(self.outbox)}
        if smtp_port is not None:
            server = SmtpServer.from_url(f"smtp://127.0.0.1:{smtp_port}")
            channels["email"] = SmtpChannel(server, timeout=10)
        self.delivery = InvoiceDelivery(billing, store, channels, EmailTemplates(), Seller())

    def import_accounts(self, *accounts: dict[str, Any]) -> None:
        raw = json.dumps({"bill_groups": GROUPS, "accounts": list(accounts)}).encode()
        import_accounts(self.billing, parse_import(raw, "test.json"), "test.json")

    def bill(
        self,
        run_id: str,
        *account_ids: str,
        period: Period = JANUARY,
        deliver: bool = True,
        render: bool = True,
    ) -> list[UUID]:
        """Run `run_id` over every account; render the invoices of `account_ids`."""
        settings = RunSettings(render_invoices=True, deliver_invoices=deliver)
        schedule_run(self.billing, run_id, period, None, Selection(), settings)
        BillRunExecutor(self.billing, batch_size=10).execute(run_id)
        invoice_ids = [invoice_uuid(run_id, account_id) for account_id in account_ids]
        if render:
            for invoice_id in invoice_ids:
                self.documents.render(invoice_id)
        return invoice_ids

    def deliver(self, invoice_id: UUID) -> DeliveryOutcome:
        return self.delivery.deliver(invoice_id)


@pytest.fixture
def world(billing: Billing, tmp_path: Path, inbox: Inbox) -> Billed:
    return Billed(billing, tmp_path, inbox.port)


def attachments(message: EmailMessage) -> dict[str, tuple[str, bytes]]:
    found = {}
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found[part.get_filename() or ""] = (part.get_content_type(), payload)
    return found


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


# Email --------------------------------------------------------------------------


def test_delivering_by_email_sends_one_message_with_the_pdf_and_xml_and_a_fixed_message_id(
    world: Billed, inbox: Inbox, log: EventLog
) -> None:
    world.import_accounts(account("ACME-001", package("office"), bill_group="mail"))
    (invoice_id,) = world.bill("2026-01", "ACME-001")

    outcome = world.deliver(invoice_id)

    assert outcome.kind is OutcomeKind.DELIVERED
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["ap@example.test"]
    assert message["Message-ID"] == f"<invoice-{invoice_id}@billrun>"
    assert message["Message-ID"] == invoice_message_id(invoice_id)
    # .strip(): Python's parser keeps the space of a header folded right after its name.
    assert message["Subject"].strip() == "Invoice INV-00000001 from Billrun Demo Ltd"
    files = attachments(message)
    assert set(files) == {"INV-00000001.pdf", "INV-00000001.xml"}
    content_type, pdf = files["INV-00000001.pdf"]
    assert content_type == "application/pdf"
    assert pdf.startswith(b"%PDF-")
    assert files["INV-00000001.xml"][0] == "application/xml"
    recorded = log.states(InvoiceDelivered)
    assert len(recorded) == 1
    assert recorded[0]["channel"] == "email"
    assert recorded[0]["recipient"] == "ap@example.test"
    assert recorded[0]["message_id"] == invoice_message_id(invoice_id)


def test_delivering_again_sends_nothing(world: Billed, inbox: Inbox, log: EventLog) -> None:
    world.import_accounts(account("ACME-001", package("office"), bill_group="mail"))
    (invoice_id,) = world.bill("2026-01", "ACME-001")
    first = world.deliver(invoice_id)

    again = world.deliver(invoice_id)

    assert again.kind is OutcomeKind.ALREADY_DELIVERED
    assert again.delivery == first.delivery
    assert len(inbox.messages) == 1
    assert log.count(InvoiceDelivered) == 1


def test_the_first_invoice_template_is_used_for_an_accounts_first_invoice_only(
    world: Billed, inbox: Inbox
) -> None:
    world.import_accounts(
        account("ACME-001", package("office"), bill_group="custom"),
        account("BETA-002", package("office"), bill_group="mail"),
    )
    january = world.bill("2026-01", "ACME-001", "BETA-002")
    february = world.bill("2026-02", "ACME-001", "BETA-002", period=FEBRUARY)

    # February first: "first" is decided by invoice numbers, not delivery order.
    outcomes = [world.deliver(i) for i in (february[0], january[0], january[1], february[1])]

    assert [o.first_invoice for o in outcomes] == [False, True, True, False]
    bodies = [body(message).strip() for _, message in inbox.messages]
    # Numbers in close order: January ACME 1, BETA 2; February ACME 3, BETA 4.
    assert bodies[0] == "REGULAR INV-00000003 for ACME-001 Ltd"
    assert bodies[1] == "WELCOME ACME-001 Ltd, here is INV-00000001"
    assert inbox.messages[1][1]["Subject"].strip() == "Your bill INV-00000001"
    # Built-in templates: a welcome for BETA's first invoice, the usual text after.
    assert "Welcome to Billrun Demo Ltd" in bodies[2]
    assert "Please find attached invoice INV-00000004" in bodies[3]


def test_an_account_without_an_email_address_is_skipped_and_nothing_is_recorded(
    world: Billed, inbox: Inbox, log: EventLog
) -> None:
    # `run check` stops a run with such an account; here the email is removed after
    # the run, the last line of defence being the deliverer's.
    world.import_accounts(account("ACME-001", package("office"), bill_group="mail"))
    (invoice_id,) = world.bill("2026-01", "ACME-001")
    world.import_accounts(account("ACME-001", package("office"), bill_group="mail", email=None))

    outcome = world.deliver(invoice_id)

    assert outcome.kind is OutcomeKind.SKIPPED
    assert outcome.reason == "account ACME-001 has no invoice email"
    assert inbox.messages == []
    assert log.count(InvoiceDelivered) == 0


def test_email_without_an_smtp_server_configured_is_refused_and_nothing_is_recorded(
    billing: Billing, tmp_path: Path, log: EventLog
) -> None:
    world = Billed(billing, tmp_path, smtp_port=None)
    world.import_accounts(account("ACME-001", package("office"), bill_group="mail"))
    (invoice_id,) = world.bill("2026-01", "ACME-001")

    with pytest.raises(ChannelUnavailable, match="BILLRUN_SMTP_URL"):
        world.deliver(invoice_id)
    assert log.count(InvoiceDelivered) == 0


def test_an_smtp_server_that_cannot_be_reached_fails_the_delivery_and_nothing_is_recorded(
    billing: Billing, tmp_path: Path, log: EventLog
) -> None:
    world = Billed(billing, tmp_path, smtp_port=free_port())  # nothing listens there
    world.import_accounts(account("ACME-001", package("office"), bill_group="mail"))
    (invoice_id,) = world.bill("2026-01", "ACME-001")

    with pytest.raises(OSError):
        world.deliver(invoice_id)
    assert log.count(InvoiceDelivered) == 0
    assert billing.get_invoice(invoice_id).delivery is None  # a retry will send it


def test_a_broken_group_template_is_refused_before_anything_is_sent(
    world: Billed, inbox: Inbox, log: EventLog
) -> None:
    world.import_accounts(
        account("ACME-001", package("office"), bill_group="broken"),
        account("BETA-002", package("office"), bill_group="broken"),
    )
    world.bill("2026-01", "ACME-001")
    (second,) = world.bill("2026-02", "ACME-001", period=FEBRUARY)  # not a first invoice

    with pytest.raises(DeliveryRefused, match="no_such_name"):
        world.deliver(second)
    assert inbox.messages == []
    assert log.count(InvoiceDelivered) == 0


# File and none ------------------------------------------------------------------


def test_the_file_channel_writes_one_eml_named_by_the_message_id(
    world: Billed, inbox: Inbox, log: EventLog
) -> None:
    world.import_accounts(account("ACME-001", package("office"), bill_group="paper"))
    (invoice_id,) = world.bill("2026-01", "ACME-001")

    outcome = world.deliver(invoice_id)
    world.deliver(invoice_id)

    files = list(world.outbox.iterdir())
    assert [f.name for f in files] == [f"invoice-{invoice_id}@billrun.eml"]
    assert outcome.delivery is not None
    assert outcome.delivery.location == str(files[0])
    message = email.message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert message["Message-ID"] == invoice_message_id(invoice_id)
    assert message["To"] == "ACME-001 Ltd <ap@example.test>"
    assert set(attachments(message)) == {"INV-00000001.pdf", "INV-00000001.xml"}
    assert inbox.messages == []
    assert [s["channel"] for s in log.states(InvoiceDelivered)] == ["file"]


def test_channel_none_records_the_delivery_and_sends_nothing(
    world: Billed, inbox: Inbox, log: EventLog
) -> None:
    world.import_accounts(account("ACME-001", package("office"), bill_group="silent"))
    (invoice_id,) = world.bill("2026-01", "ACME-001")

    outcome = world.deliver(invoice_id)

    assert outcome.kind is OutcomeKind.DELIVERED
    assert outcome.delivery is not None
    assert (outcome.delivery.channel, outcome.delivery.location) == ("none", None)
    assert inbox.messages == []
    assert not world.outbox.exists()
    assert [s["channel"] for s in log.states(InvoiceDelivered)] == ["none"]


# Not ready ----------------------------------------------------------------------


def test_a_run_that_does_not_deliver_invoices_is_skipped(
    world: Billed, inbox: Inbox, log: EventLog
) -> None:
    world.import_accounts(account("ACME-001", package("office"), bill_group="mail"))
    (invoice_id,) = world.bill("2026-01", "ACME-001", deliver=False)

    outcome = world.deliver(invoice_id)

    assert outcome.kind is OutcomeKind.SKIPPED
    assert outcome.reason == "run 2026-01 does not deliver invoices"
    assert inbox.messages == []
    assert log.count(InvoiceDelivered) == 0


def test_an_invoice_without_a_pdf_is_skipped_until_it_is_rendered(
    world: Billed, inbox: Inbox
) -> None:
    world.import_accounts(account("ACME-001", package("office"), bill_group="mail"))
    (invoice_id,) = world.bill("2026-01", "ACME-001", render=False)

    skipped = world.deliver(invoice_id)
    world.documents.render(invoice_id, ["pdf"])
    delivered = world.deliver(invoice_id)

    assert (skipped.kind, skipped.reason) == (OutcomeKind.SKIPPED, "the invoice has no PDF yet")
    assert delivered.kind is OutcomeKind.DELIVERED
    (_, message), *_ = inbox.messages
    assert set(attachments(message)) == {"INV-00000001.pdf"}  # the XML was never asked for


def test_a_stored_address_list_from_before_the_import_refused_it_sends_nothing(
    world: Billed, inbox: Inbox, log: EventLog
) -> None:
    world.import_accounts(account("ACME-001", package("office"), bill_group="mail"))
    # Stored by an older billrun, whose import took any string with an @ in it.
    stored = world.billing.get_account("ACME-001")
    stored.change_details(stored.name, "e20@example.test,attacker", "mail", world.billing.clock())
    world.billing.save(stored)
    (invoice,) = world.bill("2026-01", "ACME-001")

    with pytest.raises(DeliveryRefused, match="the recipient is not one email address"):
        world.deliver(invoice)
    assert inbox.messages == []
    assert log.count(InvoiceDelivered) == 0
