"""The outbox relay: every public event of the event store, published to NATS JetStream.

The relay reads the notification log (`billing_events`) in commit order from its
saved position, maps each event that has a public form to a CloudEvents message
(`infrastructure.contract`, `encoder`) and publishes it to
`<prefix>.<aggregate>.<Event>` with `Nats-Msg-Id` = `<source>:<notification id>`
(the prefix and source of the deployment, see `infrastructure.messaging`).
Events without a public form are read, their facts learnt, and skipped. Why
nothing is lost and nothing reaches a consumer twice:

- Messages go out a window at a time (default 4,000 log events), all in flight
  together; the position, kept in PostgreSQL (`relay_position`), moves only past
  messages whose ack arrived, and only over an unbroken run of them from the
  window's start (past the window's skipped events once all its messages are
  acked). A failure (timeout, NATS down, an error ack) keeps the position where
  the acked run ends and retries the rest, with backoff, forever.
- The position is saved after the acks arrive, so a relay that dies in between
  publishes that window again when it restarts; the server drops the republished
  messages as duplicates of their `Nats-Msg-Id` (the stream's duplicate window,
  one hour, see `infrastructure.messaging.DUPLICATE_WINDOW_S`).
- Reading "after my position" never skips a transaction that commits later: the
  library inserts under a table lock, so events become visible in notification id
  order. The ids only increase; they are not gapless (a rolled-back insert uses
  up its sequence values), which is why the relay reads "ids greater than my
  position" rather than "the next id".

Order: the stream holds the events in commit order. A window cut short by a lost
connection was stored up to some message, in order (one connection, one stream);
the relay drops that connection with whatever nats-py still had buffered for it
and continues from the first message without an ack on a new one. The one case
left is the server refusing a single message (an error ack) while storing later
ones: the refused message then lands after them, still exactly once.

One module per part: `log` (reading the notification log), `positions` (the saved
position and status), `encoder` (events to messages), `wire` (messages as NATS
sends them), `window` (a window in flight and its acks), `loop` (the relay).
"""

from infrastructure.nats_wire import send_hpub
from infrastructure.relay.encoder import Encoder, Outbound
from infrastructure.relay.errors import RelayAlreadyRunning, RelayError
from infrastructure.relay.log import NotificationLog, RelayRow
from infrastructure.relay.loop import (
    ACK_TIMEOUT_S,
    BACKOFF_S,
    DEFAULT_WINDOW,
    POLL_INTERVAL_S,
    Relay,
    RelayOutcome,
)
from infrastructure.relay.positions import RelayPositions, RelayStatus, relay_status
from infrastructure.relay.window import AckWindow, WindowOutcome
from infrastructure.relay.wire import header_block

__all__ = [
    "ACK_TIMEOUT_S",
    "BACKOFF_S",
    "DEFAULT_WINDOW",
    "POLL_INTERVAL_S",
    "AckWindow",
    "Encoder",
    "NotificationLog",
    "Outbound",
    "Relay",
    "RelayAlreadyRunning",
    "RelayError",
    "RelayOutcome",
    "RelayPositions",
    "RelayRow",
    "RelayStatus",
    "WindowOutcome",
    "header_block",
    "relay_status",
    "send_hpub",
]
