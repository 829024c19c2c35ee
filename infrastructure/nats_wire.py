"""The relay's wire shortcut: the one place billrun reaches into nats-py internals.

`send_hpub` does what `Client.publish` does minus re-encoding the headers (see
`infrastructure.relay.header_block`): 15 of the relay's 38 microseconds per event
went to that re-encoding. It writes the HPUB frame through private members of
nats-py's `Client`, which can change in any release; that is why nats-py is pinned
in pyproject.toml and why `require_nats_wire` checks, before a relay starts, that
the installed nats-py is the pinned one and still has what the shortcut uses. A
mismatch is a clear start-up error instead of an `AttributeError` in the middle of
a window (or, worse, a frame written the old way into a changed buffer).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from nats.aio.client import Client as NATS
from nats.errors import ConnectionClosedError, MaxPayloadError

PINNED_NATS_PY = "2.16.0"
"""The nats-py version the shortcut was written against (pyproject.toml pins it)."""

WIRE_MEMBERS = ("_send_command", "_flush_queue", "_flush_pending", "stats", "max_payload",
                "is_closed")  # fmt: skip
"""The `Client` members `send_hpub` uses; the private ones are the reason for the check."""


class NatsWireMismatch(RuntimeError):
    """The installed nats-py is not the one the relay's wire shortcut was written for."""


def require_nats_wire(installed: str | None = None, client: NATS | None = None) -> None:
    """Refuse to start when nats-py is not the pinned version or lacks what we use.

    `installed` and `client` default to the real ones; tests pass others to see
    the refusal.
    """
    if installed is None:
        try:
            installed = version("nats-py")
        except PackageNotFoundError:
            installed = "not installed"
    if installed != PINNED_NATS_PY:
        raise NatsWireMismatch(
            f"the relay publishes through nats-py {PINNED_NATS_PY} internals, but nats-py "
            f"{installed} is installed; install nats-py=={PINNED_NATS_PY} (pinned in "
            "pyproject.toml) or re-check infrastructure/nats_wire.py against the new version"
        )
    probe = client if client is not None else NATS()
    missing = [name for name in WIRE_MEMBERS if not hasattr(probe, name)]
    if missing:
        raise NatsWireMismatch(
            f"nats-py {installed}'s Client lacks {', '.join(missing)}, which the relay's "
            f"wire shortcut (infrastructure/nats_wire.py) needs; it was written for nats-py "
            f"{PINNED_NATS_PY}"
        )


async def send_hpub(nc: NATS, subject: str, reply: str, headers: bytes, body: bytes) -> None:
    """Publish one message whose header block is already encoded (`header_block`).

    What `nc.publish(subject, body, reply, headers)` does, minus re-encoding the
    headers: the same HPUB frame into nats-py's pending buffer, the same kick of
    its flusher. It uses nats-py internals (`_send_command`, `_flush_queue`,
    `_flush_pending`), checked by `require_nats_wire` when a relay starts; the
    relay's integration tests publish through it against a real server.
    """
    if nc.is_closed:
        raise ConnectionClosedError
    size = len(headers) + len(body)
    if size > nc.max_payload:
        raise MaxPayloadError
    await nc._send_command(
        b"".join((f"HPUB {subject} {reply} {len(headers)} {size}\r\n".encode(), headers, body,
                  b"\r\n"))
    )  # fmt: skip
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += len(body)
    flush_queue = nc._flush_queue
    if flush_queue is not None and flush_queue.empty():
        await nc._flush_pending()
