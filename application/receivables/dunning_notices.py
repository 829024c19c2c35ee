"""Dunning notices: the `notify` action of a dunning stage.

The run's dunning step (`application/receivables/dunning.py`) records `DunningApplied` on the
account's receivables; the worker's dunning consumer (`consumers/dunning.py`)
then calls `DunningNotices.send`, which emails the account a payment reminder
by its bill group's delivery channel and records `DunningNoticeSent` once per
invoice and stage (a repeat sends nothing).

A notice goes out only for a stage that notifies, while its invoice is still
open and that stage is still the invoice's latest: a payment, a withdrawal or a
higher stage recorded before the notice went out makes it moot (skipped, with
the reason, nothing recorded).

The message. Subject and body come from the built-in templates
(`dunning_subject.txt.j2`, `dunning_notice.txt.j2`) unless the stage has its own
body template (`DunningStage.template`, carried by `DunningApplied.template`),
which runs in jinja2's sandbox with `StrictUndefined` like a bill group's
invoice email templates: a typo or an attempt to reach Python internals is
refused (`DeliveryRefused`, nothing sent). The names a template can use are
those of `notice_context`. The Message-ID is deterministic per invoice and stage
(`<dunning-<invoice uuid>-<stage>@billrun>`).

Channels, the missing recipient and the crash window are as for invoices
(`application/invoicing/delivery.py`; both use `application/shared/messages.py`): `email` (SMTP),
`file` (an `.eml` in the outbox), `none` (recorded, nothing sent); an account
without an invoice email on the email channel is skipped; the notice is sent
first and recorded after, so a crash in between can send it twice (same
Message-ID), never lose it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from email.message import EmailMessage
from enum import StrEnum
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.shared.app import Billing
from application.shared.errors import ApplicationError
from application.shared.messages import (
    Readiness,
    mail_channels,
    render_text,
    route_for,
    text_message,
)
from application.shared.ports import MailChannel, MessageTemplates, Seller
from application.shared.retrying import SAVE_ATTEMPTS
from domain.receivables.dunning import DunningAction
from domain.receivables.events import DunningApplied, DunningNoticeSent
from domain.receivables.receivables import Receivables, receivables_uuid
from domain.shared.dispatch import Dispatch
from infrastructure.settings import Settings

log = logging.getLogger(__name__)

SUBJECT_TEMPLATE = "dunning_subject.txt.j2"
BODY_TEMPLATE = "dunning_notice.txt.j2"


class NoticeKind(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class NoticeOutcome:
    invoice_id: UUID
    stage: int
    kind: NoticeKind
    notice: DunningNoticeSent | None = None
    """What is recorded (sent, already sent); None when skipped."""
    reason: str | None = None
    """Why it was skipped; nothing was sent or recorded."""

    @property
    def sent(self) -> bool:
        return self.kind is NoticeKind.SENT


def dunning_message_id(invoice_id: UUID, stage: int) -> str:
    """The same Message-ID every time a stage's notice is sent, so repeats are recognisable."""
    return f"<dunning-{invoice_id}-{stage}@billrun>"


@dataclass(frozen=True)
class DunningNotice:
    """Everything a notice says, gathered from the receivables, the account and the
    bill group (money at the currency's minor unit, as recorded)."""

    invoice_id: UUID
    number: str
    """INV-00000012: as the customer knows the invoice."""
    stage: int
    rule: str
    run_id: str
    days_overdue: int
    issue_date: date
    due_date: date
    currency: str
    invoice_amount: Decimal
    overdue_amount: Decimal
    """What is still open on the invoice when the notice is composed."""
    fee: Decimal | None
    """The stage's late fee (charged on the next invoice); None: it charges none."""
    suspends: bool
    """The stage suspends the account."""
    template: str | None
    """The stage's own body template; None: the built-in one."""
    account_id: str
    account_name: str
    recipient: str | None
    group_id: str


def notice_context(notice: DunningNotice, seller: Seller) -> dict[str, object]:
    """The names a notice's subject or body template can use."""
    return {
        "notice": notice,
        "number": notice.number,
        "stage": notice.stage,
        "rule": notice.rule,
        "run_id": notice.run_id,
        "days_overdue": notice.days_overdue,
        # Dates print as ISO 8601 (`{{ due_date }}`); `| long_date` spells them out.
        "issue_date": notice.issue_date,
        "due_date": notice.due_date,
        "currency": notice.currency,
        "invoice_amount": f"{notice.invoice_amount:,}",
        "overdue_amount": f"{notice.overdue_amount:,}",
        "fee": None if notice.fee is None else f"{notice.fee:,}",
        "suspended": notice.suspends,
        "account_id": notice.account_id,
        "account_name": notice.account_name,
        "recipient": notice.recipient,
        "seller_name": seller.name,
        "seller_email": seller.email,
        "seller_iban": seller.iban,
        "seller_bic": seller.bic,
    }


def compose_notice(
    notice: DunningNotice, templates: MessageTemplates, seller: Seller, sent_at: datetime
) -> EmailMessage:
    """The notice's plain-text email. Raises DeliveryRefused when the stage's own
    template cannot be rendered."""
    context = notice_context(notice, seller)
    where = (
        f"dunning notice of invoice {notice.number} (stage {notice.stage}): "
        f"bill group {notice.group_id!r}, rule {notice.rule!r}"
    )
    subject = render_text(templates, SUBJECT_TEMPLATE, None, context, where)
    body = render_text(templates, BODY_TEMPLATE, notice.template, context, where)
    return text_message(
        message_id=dunning_message_id(notice.invoice_id, notice.stage),
        sent_at=sent_at,
        seller=seller,
        to=(notice.account_name, notice.recipient),
        subject=subject,
        body=body,
        headers={"X-Billrun-Invoice": notice.number, "X-Billrun-Dunning-Stage": str(notice.stage)},
    )


def ready_for_notice(
    receivables: Receivables, applied: DunningApplied | None, invoice_id: UUID, stage: int
) -> Readiness:
    """Is the notice of `stage` of `invoice_id` (its `DunningApplied`: `applied`)
    still worth sending? The one place notice policy is decided: the stage was
    applied and notifies, the invoice is still open, and no later stage was
    applied since (that stage's notice says more)."""
    if applied is None:
        return Readiness(
            False, f"account {receivables.account_id}: no dunning stage {stage} on {invoice_id}"
        )
    item = receivables.items[invoice_id]
    checks = (
        (DunningAction.NOTIFY in applied.actions, f"dunning stage {stage} does not notify"),
        (not item.withdrawn, "the invoice is withdrawn"),
        (item.open_amount > 0, "the invoice is paid"),
        (
            item.dunning_stage <= stage,
            f"dunning stage {item.dunning_stage} was applied to it since",
        ),
    )
    for ready, reason in checks:
        if not ready:
            return Readiness(False, f"invoice {applied.number}: {reason}")
    return Readiness(True)


@dataclass
class _Loaded:
    receivables: Receivables
    applied: DunningApplied | None
    sent: DunningNoticeSent | None


class DunningNotices:
    """Sends dunning stages' notices by their bill group's channel."""

    def __init__(
        self,
        billing: Billing,
        channels: Mapping[str, MailChannel],
        templates: MessageTemplates,
        seller: Seller,
    ) -> None:
        self.billing = billing
        self.channels = dict(channels)
        self.templates = templates
        self.seller = seller

    def send(self, receivables: UUID | str, invoice_id: UUID, stage: int) -> NoticeOutcome:
        """Send the notice of dunning `stage` of `invoice_id` once. `receivables` is
        the receivables' id (as the consumer sees it) or the account id.

        Skips (sending and recording nothing) when there are no such receivables or
        stage, the stage does not notify, the invoice is no longer open, a later
        stage was applied since, or the email channel has no recipient. Raises
        ChannelUnavailable, DeliveryRefused, or the channel's OSError (nothing
        recorded: retry later).
        """
        receivables_id = (
            receivables if isinstance(receivables, UUID) else receivables_uuid(receivables)
        )
        loaded = self._load(receivables_id, invoice_id, stage)

        def skipped(reason: str) -> NoticeOutcome:
            return NoticeOutcome(invoice_id, stage, NoticeKind.SKIPPED, reason=reason)

        if loaded is None:
            return skipped(f"no receivables {receivables}")
        if loaded.sent is not None:
            return NoticeOutcome(invoice_id, stage, NoticeKind.ALREADY_SENT, loaded.sent)
        readiness = ready_for_notice(loaded.receivables, loaded.applied, invoice_id, stage)
        if not readiness:
            return skipped(readiness.reason or "")
        applied = loaded.applied
        assert applied is not None  # ready_for_notice
        item = loaded.receivables.items[invoice_id]

        account = self.billing.get_account(loaded.receivables.account_id)
        group = self.billing.get_bill_group(account.bill_group)
        message_id = dunning_message_id(invoice_id, stage)
        route = route_for(self.channels, group, account)
        if route.channel is None:  # channel `none`
            return self._record(loaded.receivables, invoice_id, stage, "none", None, message_id)
        if route.skipped is not None:
            return skipped(route.skipped)
        notice = DunningNotice(
            invoice_id=invoice_id,
            number=applied.number,
            stage=stage,
            rule=applied.rule,
            run_id=applied.run_id,
            days_overdue=applied.days_overdue,
            issue_date=item.issued_on,
            due_date=item.due_on,
            currency=loaded.receivables.currency,
            invoice_amount=item.amount,
            overdue_amount=item.open_amount,
            fee=applied.fee if applied.fee else None,
            suspends=DunningAction.SUSPEND in applied.actions,
            template=applied.template,
            account_id=account.account_id,
            account_name=account.name,
            recipient=route.recipient,
            group_id=group.group_id,
        )
        message = compose_notice(notice, self.templates, self.seller, self.billing.clock())
        location = route.channel.send(message)
        log.info(
            "dunning notice of invoice %s (stage %d) sent by %s to %s",
            applied.number, stage, route.name.value, route.recipient,
        )  # fmt: skip
        return self._record(
            loaded.receivables,
            invoice_id,
            stage,
            route.name.value,
            route.recipient,
            message_id,
            location,
        )

    # Loading and recording ------------------------------------------------------

    def _load(self, receivables_id: UUID, invoice_id: UUID, stage: int) -> _Loaded | None:
        """The receivables, with the stage's DunningApplied and DunningNoticeSent (if
        any), from one read of their history."""
        events = list(self.billing.iter_history(receivables_id))
        receivables = Receivables.project(None, events)
        if receivables is None:
            return None
        applied = sent = None
        for event in events:
            if getattr(event, "invoice_id", None) != invoice_id:
                continue
            if isinstance(event, DunningApplied) and event.stage == stage:
                applied = event
            elif isinstance(event, DunningNoticeSent) and event.stage == stage:
                sent = event
        return _Loaded(receivables, applied, sent)

    def _record(
        self,
        receivables: Receivables,
        invoice_id: UUID,
        stage: int,
        channel: str,
        recipient: str | None,
        message_id: str,
        location: str | None = None,
    ) -> NoticeOutcome:
        for _attempt in range(SAVE_ATTEMPTS):
            if (invoice_id, stage) in receivables.notices_sent:
                # Another sender recorded it between our load and our save.
                loaded = self._load(receivables.id, invoice_id, stage)
                assert loaded is not None
                return NoticeOutcome(invoice_id, stage, NoticeKind.ALREADY_SENT, loaded.sent)
            at = self.billing.clock()
            dispatch = Dispatch(channel, recipient, message_id, location)
            receivables.record_notice(invoice_id, stage, dispatch, at)
            try:
                recordings = self.billing.save(receivables)
            except RecordConflictError:
                # A run or a payment changed the receivables meanwhile: reload and
                # record on top of them, without sending again.
                loaded = self._load(receivables.id, invoice_id, stage)
                assert loaded is not None
                receivables = loaded.receivables
                continue
            recorded = next(
                event
                for recording in recordings
                if isinstance(event := recording.domain_event, DunningNoticeSent)
            )
            return NoticeOutcome(invoice_id, stage, NoticeKind.SENT, recorded)
        raise ApplicationError(
            f"the dunning notice of invoice {invoice_id} (stage {stage}) was sent by {channel} "
            f"but the receivables kept changing while it was recorded ({SAVE_ATTEMPTS} "
            "attempts); sending it again resends it"
        )


def dunning_notices(billing: Billing, settings: Settings) -> DunningNotices:
    """The production wiring, like `invoice_delivery`: the outbox under
    BILLRUN_HOME/outbox, SMTP when BILLRUN_SMTP_URL is set."""
    from infrastructure.rendering.renderer import EmailTemplates

    return DunningNotices(
        billing, mail_channels(settings), EmailTemplates(), Seller.from_settings(settings.seller)
    )
