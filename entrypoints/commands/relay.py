"""`billrun relay ...`: publish the event log to NATS JetStream, and see how far it got."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer
from nats.errors import Error as NatsError
from rich.markup import escape
from rich.table import Table

from entrypoints import output
from entrypoints.common import JsonFlag, refusals, runtime, until_signalled
from entrypoints.worker import relay_parts
from infrastructure.messaging import nats_url, stream_names
from infrastructure.relay import (
    DEFAULT_WINDOW,
    Relay,
    RelayError,
    relay_status,
)

relay_app = typer.Typer(
    help="Publish every public event to NATS JetStream (stream BILLING, subjects "
    "billing.<aggregate>.<Event>, CloudEvents) and see how far the relay got. "
    "Configuration: BILLRUN_NATS_URL (unset: an embedded nats-server under "
    "BILLRUN_HOME), BILLRUN_NATS_PREFIX, BILLRUN_SOURCE.",
    no_args_is_help=True,
)

WindowOption = Annotated[
    int,
    typer.Option(
        min=1, max=100_000, help="Messages in flight at once, each acknowledged by the server."
    ),
]


@relay_app.command("run")
@refusals
def relay_run(
    once: Annotated[
        bool,
        typer.Option("--once", help="Publish up to the current head, then exit."),
    ] = False,
    window: WindowOption = DEFAULT_WINDOW,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print what was published as JSON when done.")
    ] = False,
) -> None:
    """Publish the event log from the saved position, then follow it.

    Each public event goes to <prefix>.<aggregate>.<Event> with Nats-Msg-Id =
    <source>:<notification id>; events without a public form are skipped (billrun
    history --all has them). The position is saved once the server has acknowledged a
    window, so a relay that is killed and restarted republishes at most one
    window, which the server drops as duplicates. Without --once it waits for new
    events until SIGINT or SIGTERM, then finishes the window in flight and exits.
    A second signal stops at once. Use -v for a log line per window.
    """
    with _relay_refusals(), runtime(actor="worker") as rt, nats_url(rt.settings) as url:
        source, positions = relay_parts(rt)
        names = stream_names(rt.settings)
        relay = Relay(source, positions, url, names, window=window)
        outcome = until_signalled(lambda stop: relay.run(stop, follow=not once))
    if json_out:
        output.print_json({"stream": names.stream, **outcome.as_json()})
        return
    output.console.print(
        f"published {outcome.published:,} events to stream {names.stream} "
        f"({outcome.duplicates:,} dropped by the server as already there); "
        f"position {outcome.position:,}, head {outcome.head:,}, lag {outcome.lag:,}"
    )


@relay_app.command("replay")
@refusals
def relay_replay(
    from_: Annotated[
        int, typer.Option("--from", min=1, help="First notification id to publish again.")
    ],
    to: Annotated[
        int | None,
        typer.Option("--to", min=1, help="Last notification id (default: the head)."),
    ] = None,
    replay_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Name this replay (default: random); repeating an interrupted replay "
            "with the same id (within an hour) republishes nothing twice.",
        ),
    ] = None,
    window: WindowOption = DEFAULT_WINDOW,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print what was published as JSON when done.")
    ] = False,
) -> None:
    """Publish notifications FROM..TO again, for a subscriber that needs history.

    The copies are new messages (Nats-Msg-Id <source>:<id>:replay:<replay id>, header
    Billrun-Replay-Id), so the server keeps them: every consumer of the stream
    sees these events a second time. billrun's consumers are idempotent, so that
    is harmless; to feed one new subscriber only, start it at the right stream
    sequence instead. The relay's position does not move.
    """
    with _relay_refusals(), runtime(actor="worker") as rt, nats_url(rt.settings) as url:
        source, positions = relay_parts(rt)

        names = stream_names(rt.settings)
        relay = Relay(
            source, positions, url, names, window=window, connection_name="billrun-replay"
        )
        outcome = until_signalled(lambda stop: relay.replay(from_, to, replay_id, stop))
    if json_out:
        output.print_json({"stream": names.stream, **outcome.as_json()})
        return
    complete = outcome.position == outcome.head
    output.console.print(
        f"replay {outcome.replay_id}: published {outcome.published:,} events "
        f"({outcome.first:,}..{outcome.position:,} of {outcome.first:,}..{outcome.head:,}) "
        f"to stream {names.stream}"
        + ("" if complete else f"; interrupted: resume with --id {outcome.replay_id}")
    )


@relay_app.command("status")
@refusals
def relay_status_command(json_out: JsonFlag = False) -> None:
    """The relay's saved position, the log's head, and the lag between them."""
    with runtime() as rt:
        status = relay_status(*relay_parts(rt), stream_names(rt.settings).stream)
    if json_out:
        output.print_json(status.as_json())
        return
    table = Table(title="Relay", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("stream", status.stream)
    table.add_row("position", f"{status.position:,}")
    table.add_row("head", f"{status.head:,}")
    table.add_row("lag", f"{status.lag:,}", style="yellow" if status.lag else "")
    table.add_row("saved at", status.updated_at.isoformat() if status.updated_at else "never")
    output.console.print(table)


@contextlib.contextmanager
def _relay_refusals() -> Iterator[None]:
    """Relay and NATS failures are refusals too: a message on stderr, exit 2."""
    try:
        yield
    except (RelayError, NatsError) as error:
        reason = str(error) or type(error).__name__
        output.errors.print(f"[red]error:[/red] {escape(reason)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
