"""Ways out for invoice emails: an SMTP server, or `.eml` files in an outbox folder.

Both take a finished `email.message.EmailMessage` (built once by the delivery
service), so the file channel writes exactly what SMTP would have sent.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

from infrastructure.file_store import write_atomically
from infrastructure.settings import ConfigurationError, Settings

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


def outbox_folder(settings: Settings) -> Path:
    return settings.home / "outbox"


@dataclass(frozen=True)
class SmtpServer:
    scheme: str
    """smtp (plain), smtp+starttls (upgrade after connecting) or smtps (TLS from the start)."""
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """`smtp://[user:password@]host[:port]`, or the `smtp+starttls`/`smtps` schemes."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            schemes = ", ".join(f"{s}://" for s in DEFAULT_PORTS)
            raise ConfigurationError(f"BILLRUN_SMTP_URL: {url!r} must start with one of {schemes}")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ConfigurationError(f"BILLRUN_SMTP_URL: bad port in {url!r}") from None
        if not parts.hostname:
            raise ConfigurationError(f"BILLRUN_SMTP_URL: no host in {url!r}")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:  # never print the password
        return f"{self.scheme}://{self.host}:{self.port}"


class SmtpChannel:
    """Sends each message in its own SMTP session.

    One session per message keeps failure simple (a dropped connection fails one
    delivery, which is retried) at the cost of a handshake each time; deliveries
    are spread over consumers, not batched, so there is little to reuse.
    """

    def __init__(self, server: SmtpServer, timeout: float = 30.0) -> None:
        self.server = server
        self.timeout = timeout

    def send(self, message: EmailMessage) -> str | None:
        server = self.server
        smtp: smtplib.SMTP
        if server.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(
                server.host,
                server.port,
                timeout=self.timeout,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=self.timeout)
        with smtp:
            if server.scheme == "smtp+starttls":
                smtp.starttls(context=ssl.create_default_context())
            if server.username is not None:
                smtp.login(server.username, server.password or "")
            # The one address of the To header, as parsed by the email package: the
            # recipients are never read from anything else (Cc, Bcc, a list).
            recipients = [a.addr_spec for a in getattr(message["To"], "addresses", ())]
            if len(recipients) != 1:
                raise ValueError(f"an invoice email has one recipient, not {recipients}")
            # Raises (an OSError) unless the server accepted every recipient.
            refused = smtp.send_message(message, to_addrs=recipients)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        return None


class OutboxChannel:
    """Writes each message as an RFC 5322 `.eml` file named by its Message-ID.

    The write is atomic (temporary file, then rename), so a repeat of the same
    delivery replaces the file with the same message instead of adding a second.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage) -> str | None:
        message_id = message["Message-ID"]
        if not message_id:
            raise ValueError("an outbox message needs a Message-ID: it names the file")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / eml_name(str(message_id))
        # policy.SMTP: CRLF line endings, as RFC 5322 requires on the wire.
        write_atomically(path, message.as_bytes(policy=policy.SMTP))
        return str(path)


def eml_name(message_id: str) -> str:
    """`<invoice-1234@billrun>` -> `invoice-1234@billrun.eml` (nothing but safe characters)."""
    bare = message_id.strip().strip("<>")
    safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", bare).lstrip(".")
    if not safe:
        raise ValueError(f"cannot name a file after Message-ID {message_id!r}")
    return f"{safe}.eml"
