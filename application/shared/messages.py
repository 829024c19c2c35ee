"""Messages to an account, shared by invoice delivery
(`application/invoicing/delivery.py`) and the dunning notices
(`application/receivables/dunning_notices.py`): the bill group's route to the
account, templates rendered strictly, a plain-text email from the seller, the
production mail channels, and the refusals they raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from application.shared.errors import ApplicationError
from application.shared.ports import MailChannel, MessageTemplates, Seller
from domain.billing.account import Account
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.group_terms import DeliveryChannel as ChannelName
from domain.shared.inputs import InputRefused, check_email
from infrastructure.settings import Settings


class ChannelUnavailable(ApplicationError):
    """The bill group asks for a channel this process was not given (e.g. no SMTP URL)."""


class DeliveryRefused(ApplicationError):
    """The message could not be built (a bill group's template is broken); nothing sent."""


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ready


@dataclass(frozen=True)
class Route:
    """The way out a bill group gives a message to one account."""

    name: ChannelName
    channel: MailChannel | None
    """What sends it; None for the `none` channel (recorded, never sent)."""
    recipient: str | None
    skipped: str | None = None
    """Why it cannot be sent (an email channel without an address); None: it can."""


def route_for(channels: Mapping[str, MailChannel], group: BillGroup, account: Account) -> Route:
    """The bill group's channel for a message to `account`, from the `channels`
    this process was given. Raises ChannelUnavailable when the group's channel is
    not among them (email without BILLRUN_SMTP_URL)."""
    name = ChannelName(group.delivery_channel)
    if name is ChannelName.NONE:
        return Route(name, None, None)
    channel = channels.get(name.value)
    if channel is None:
        raise ChannelUnavailable(
            f"bill group {group.group_id!r} delivers by {name.value}, which is not "
            "configured here" + (" (set BILLRUN_SMTP_URL)" if name is ChannelName.EMAIL else "")
        )
    recipient = account.invoice_email
    if name is ChannelName.EMAIL and not recipient:
        return Route(name, channel, recipient, f"account {account.account_id} has no invoice email")
    return Route(name, channel, recipient)


def render_text(
    templates: MessageTemplates,
    default_name: str,
    source: str | None,
    context: Mapping[str, object],
    where: str,
) -> str:
    """Render a built-in template or a bill group's own (sandboxed, strict); a
    template that cannot be rendered raises DeliveryRefused saying `where`."""
    try:
        return templates.render_text(default_name, source, context)
    except ValueError as error:
        raise DeliveryRefused(f"{where}: {error}") from error


def text_message(
    *,
    message_id: str,
    sent_at: datetime,
    seller: Seller,
    to: tuple[str, str | None],
    subject: str,
    body: str,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A plain-text email from the seller to (name, address) (no To without an
    address: the file channel writes it all the same)."""
    message = EmailMessage()
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(sent_at)
    message["From"] = formataddr((seller.name, seller.email))
    name, address = to
    if address:
        # Exactly one recipient, whatever was stored before the import refused lists
        # and display names: a refusal here is permanent, never a second RCPT.
        try:
            recipient = Address(display_name=name, addr_spec=check_email(address))
        except (InputRefused, ValueError, HeaderParseError) as error:
            raise DeliveryRefused(f"the recipient is not one email address: {error}") from None
        message["To"] = recipient
    # A subject is one line: a template's newlines must not become headers.
    message["Subject"] = " ".join(subject.split())
    for header, value in (headers or {}).items():
        message[header] = value
    message.set_content(body + "\n")
    return message


def mail_channels(settings: Settings) -> dict[str, MailChannel]:
    """The production channels: the outbox under BILLRUN_HOME/outbox, and SMTP when
    BILLRUN_SMTP_URL is set."""
    from infrastructure.mail import OutboxChannel, SmtpChannel, SmtpServer, outbox_folder

    channels: dict[str, MailChannel] = {"file": OutboxChannel(outbox_folder(settings))}
    if settings.smtp_url:
        channels["email"] = SmtpChannel(SmtpServer.from_url(settings.smtp_url))
    return channels
