"""`billrun worker`: the relay and the consumers that render and deliver invoices."""

from __future__ import annotations

from typing import Annotated

import typer
from nats.errors import Error as NatsError
from rich.markup import escape

from entrypoints import output
from entrypoints.common import VerboseFlag, log_verbosely, refusals, runtime, until_signalled
from entrypoints.worker import WorkerFault, run_worker
from infrastructure.embedded import EmbeddedServiceError
from infrastructure.messaging import nats_url
from infrastructure.relay import RelayError


@refusals
def worker(
    verbose: VerboseFlag = False,
    batches_only: Annotated[
        bool,
        typer.Option(
            "--batches-only",
            help="Only bill the batches of runs shared by workers (`billrun run execute "
            "--workers`): no relay, consumers or scheduler. Start as many as you like, on "
            "any host with the same BILLRUN_DATABASE_URL, BILLRUN_NATS_URL and "
            "BILLRUN_NATS_PREFIX.",
        ),
    ] = False,
) -> None:
    """Run the outbox relay and the consumers until SIGINT or SIGTERM.

    The relay publishes every public event to NATS JetStream (stream BILLING, or
    the BILLRUN_NATS_PREFIX upper-cased); the
    render consumer turns each closed invoice into a PDF and UBL XML, the deliver
    consumer sends it by its bill group's channel (email, an .eml in
    BILLRUN_HOME/outbox, or none). Uses BILLRUN_NATS_URL, or an embedded
    nats-server under BILLRUN_HOME. Every worker also bills batches of runs shared
    by workers (the BILLING_RUNS work queue): one worker relays, any number help
    with `--batches-only`. Stops gracefully: the message in hand is
    finished, and nothing unacknowledged is lost. Use -v to watch it work.
    Exits 2 with one line when it cannot go on: another worker already relays,
    the streams of this prefix belong to another deployment (BILLRUN_SOURCE),
    the embedded nats-server died, or NATS was down when it was told to stop.
    """
    log_verbosely(verbose)
    try:
        with runtime(actor="worker") as rt, nats_url(rt.settings) as url:
            output.errors.print(f"worker: NATS {url}; press Ctrl-C to stop", highlight=False)
            until_signalled(lambda stop: run_worker(rt, url, stop, batches_only=batches_only))
    except (RelayError, NatsError, WorkerFault, EmbeddedServiceError) as error:
        reason = str(error) or type(error).__name__
        output.errors.print(
            f"[red]error:[/red] worker: {escape(reason)}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None
