"""Dunning notices against real PostgreSQL (and a real SMTP server, and real NATS
for the worker): a stage that notifies sends one payment reminder by the bill
group's channel and records DunningNoticeSent once; a repeat sends nothing."""

from __future__ import annotations

import asyncio
import email
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from application.receivables.dunning_notices import DunningNotices, NoticeKind, dunning_message_id
from application.shared.app import Billing
from application.shared.messages import ChannelUnavailable, DeliveryRefused
from application.shared.ports import MailChannel, Seller
from domain.invoicing.group_terms import DeliveryChannel
from domain.receivables.dunning import DunningRules, DunningStage
from domain.receivables.events import DunningNoticeSent
from domain.receivables.receivables import receivables_uuid
from domain.shared.ids import invoice_uuid
from entrypoints.runtime import Runtime
from infrastructure.mail import OutboxChannel, SmtpChannel, SmtpServer
from infrastructure.messaging import StreamNames
from infrastructure.rendering.renderer import EmailTemplates
from infrastructure.settings import Settings
from tests.conftest import account, import_accounts, package
from tests.integration.helpers import EventLog
from tests.integration.test_consumers import event_count, work_until
from tests.integration.test_delivery import Inbox, free_port

AT = datetime(2026, 3, 17, 9, 0, tzinfo=UTC)
INVOICE = invoice_uuid("2026-01", "ACME-001")
RECEIVABLES = receivables_uuid("ACME-001")

REMIND = DunningStage(days_overdue=15, notify=True, late_fee=Decimal("10.00"))
SILENT_FEE = DunningStage(days_overdue=15, late_fee=Decimal("10.00"))


def overdue(
    billing: Billing,
    channel: DeliveryChannel = DeliveryChannel.FILE,
    stage: DunningStage = REMIND,
    email_address: str | None = "ap@example.test",
) -> None:
    """ACME-001 in group `dunned` (`channel`, one dunning stage: `stage`), with
    invoice INV-00000012 of 121.00 EUR due 2026-03-02, dunned 15 days later."""
    import_accounts(
        billing, account("ACME-001", package("office"), bill_group="dunned", email=email_address)
    )
    rules = DunningRules.checked("standard", [stage])
    group = billing.get_bill_group("dunned")
    group.configure(channel, None, None, None, AT, dunning=rules)
    receivables = billing.get_receivables("ACME-001")
    receivables.post_invoice(
        INVOICE, "INV-00000012", date(2026, 1, 31), date(2026, 3, 2), Decimal("121.00"), AT
    )
    assert receivables.run_dunning("2026-03", rules, date(2026, 3, 17), AT)
    billing.save(group, receivables)


def notices(billing: Billing, outbox: Path, smtp_port: int | None = None) -> DunningNotices:
    channels: dict[str, MailChannel] = {"file": OutboxChannel(outbox)}
    if smtp_port is not None:
        channels["email"] = SmtpChannel(SmtpServer.from_url(f"smtp://127.0.0.1:{smtp_port}"))
    return DunningNotices(billing, channels, EmailTemplates(), Seller())


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    handler = Inbox(port=free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


# The file channel ---------------------------------------------------------------


def test_a_stage_that_notifies_writes_one_eml_and_records_the_notice_once(
    billing: Billing, tmp_path: Path, log: EventLog
) -> None:
    overdue(billing)
    service = notices(billing, tmp_path / "outbox")

    outcome = service.send(RECEIVABLES, INVOICE, 1)
    again = service.send("ACME-001", INVOICE, 1)  # by account id: the same receivables

    assert outcome.kind is NoticeKind.SENT
    assert again.kind is NoticeKind.ALREADY_SENT
    assert again.notice == outcome.notice
    files = list((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [f"dunning-{INVOICE}-1@billrun.eml"]
    message = read_eml(files[0])
    assert message["Message-ID"] == dunning_message_id(INVOICE, 1)
    assert message["Subject"] == "Payment reminder: invoice INV-00000012 is 15 days overdue"
    assert message["To"] == "ACME-001 Ltd <ap@example.test>"
    body = message.get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    assert "Amount overdue: EUR 121.00" in text
    assert "Due date:       2 March 2026" in text
    assert "Late fee:       EUR 10.00" in text
    recorded = log.states(DunningNoticeSent)
    assert len(recorded) == 1
    assert recorded[0]["channel"] == "file"
    assert recorded[0]["recipient"] == "ap@example.test"
    assert recorded[0]["message_id"] == dunning_message_id(INVOICE, 1)
    assert recorded[0]["location"] == str(files[0])
    assert billing.get_receivables("ACME-001").notices_sent == {(INVOICE, 1)}


def test_a_stage_without_notify_sends_and_records_nothing(
    billing: Billing, tmp_path: Path, log: EventLog
) -> None:
    overdue(billing, stage=SILENT_FEE)

    outcome = notices(billing, tmp_path / "outbox").send(RECEIVABLES, INVOICE, 1)

    assert outcome.kind is NoticeKind.SKIPPED
    assert outcome.reason == "invoice INV-00000012: dunning stage 1 does not notify"
    assert not (tmp_path / "outbox").exists()
    assert log.count(DunningNoticeSent) == 0


def test_an_invoice_paid_before_its_notice_went_out_is_not_reminded(
    billing: Billing, tmp_path: Path, log: EventLog
) -> None:
    overdue(billing)
    receivables = billing.get_receivables("ACME-001")
    receivables.receive_payment("bank-1", Decimal("121.00"), date(2026, 3, 17), AT)
    billing.save(receivables)

    outcome = notices(billing, tmp_path / "outbox").send(RECEIVABLES, INVOICE, 1)

    assert (outcome.kind, outcome.reason) == (
        NoticeKind.SKIPPED,
        "invoice INV-00000012: the invoice is paid",
    )
    assert log.count(DunningNoticeSent) == 0


def test_a_broken_stage_template_is_refused_and_nothing_is_sent_or_recorded(
    billing: Billing, tmp_path: Path, log: EventLog
) -> None:
    broken = DunningStage(days_overdue=15, notify=True, template="{{ amount_due }}")
    overdue(billing, stage=broken)

    with pytest.raises(DeliveryRefused, match="'amount_due' is undefined"):
        notices(billing, tmp_path / "outbox").send(RECEIVABLES, INVOICE, 1)
    assert not (tmp_path / "outbox").exists()
    assert log.count(DunningNoticeSent) == 0


def test_channel_none_records_the_notice_and_sends_nothing(
    billing: Billing, tmp_path: Path, log: EventLog
) -> None:
    overdue(billing, channel=DeliveryChannel.NONE)

    outcome = notices(billing, tmp_path / "outbox").send(RECEIVABLES, INVOICE, 1)

    assert outcome.kind is NoticeKind.SENT
    assert outcome.notice is not None
    assert (outcome.notice.channel, outcome.notice.location) == ("none", None)
    assert not (tmp_path / "outbox").exists()
    assert log.count(DunningNoticeSent) == 1


# Email --------------------------------------------------------------------------


def test_by_email_the_notice_goes_to_the_invoice_email_once(
    billing: Billing, tmp_path: Path, inbox: Inbox, log: EventLog
) -> None:
    overdue(billing, channel=DeliveryChannel.EMAIL)
    service = notices(billing, tmp_path / "outbox", inbox.port)

    service.send(RECEIVABLES, INVOICE, 1)
    service.send(RECEIVABLES, INVOICE, 1)

    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["ap@example.test"]
    assert message["Message-ID"] == dunning_message_id(INVOICE, 1)
    assert [s["channel"] for s in log.states(DunningNoticeSent)] == ["email"]


def test_an_account_without_an_invoice_email_is_skipped_on_the_email_channel(
    billing: Billing, tmp_path: Path, inbox: Inbox, log: EventLog
) -> None:
    overdue(billing, channel=DeliveryChannel.EMAIL, email_address=None)

    outcome = notices(billing, tmp_path / "outbox", inbox.port).send(RECEIVABLES, INVOICE, 1)

    assert (outcome.kind, outcome.reason) == (
        NoticeKind.SKIPPED,
        "account ACME-001 has no invoice email",
    )
    assert inbox.messages == []
    assert log.count(DunningNoticeSent) == 0


def test_email_without_an_smtp_server_configured_is_refused_and_nothing_is_recorded(
    billing: Billing, tmp_path: Path, log: EventLog
) -> None:
    overdue(billing, channel=DeliveryChannel.EMAIL)

    with pytest.raises(ChannelUnavailable, match="BILLRUN_SMTP_URL"):
        notices(billing, tmp_path / "outbox").send(RECEIVABLES, INVOICE, 1)
    assert log.count(DunningNoticeSent) == 0


# The worker ---------------------------------------------------------------------


@pytest.fixture
def runtime(
    billing: Billing, es_env: dict[str, str], database_url: str, nats_server: str, tmp_path: Path
) -> Runtime:
    settings = Settings(
        database_url=database_url, nats_url=nats_server, home=tmp_path, batch_size=100
    )
    return Runtime(settings, es_env, billing)


def test_the_worker_sends_one_notice_for_a_dunning_applied_published_by_the_relay(
    runtime: Runtime, billing: Billing, nats_server: str, streams: StreamNames, tmp_path: Path
) -> None:
    overdue(billing)
    assert event_count(billing, "DunningApplied") == 1

    asyncio.run(
        work_until(
            runtime,
            nats_server,
            streams,
            lambda: event_count(billing, "DunningNoticeSent") == 1,
        )
    )

    assert event_count(billing, "DunningNoticeSent") == 1
    emails = list((tmp_path / "outbox").glob("*.eml"))
    assert [e.name for e in emails] == [f"dunning-{INVOICE}-1@billrun.eml"]

    # A second worker over the same log finds the notice sent: nothing new.
    asyncio.run(work_until(runtime, nats_server, streams, lambda: False, timeout=3))
    assert event_count(billing, "DunningNoticeSent") == 1
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
