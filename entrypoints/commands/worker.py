"""`billrun worker`: the relay and the consumers that render and deliver invoices."""

from __future__ import annotations

from entrypoints import output
from entrypoints.common import VerboseFlag, log_verbosely, refusals, runtime, until_signalled
from entrypoints.worker import run_worker
from infrastructure.messaging import nats_url


@refusals
def worker(verbose: VerboseFlag = False) -> None:
    """Run the outbox relay and the consumers until SIGINT or SIGTERM.

    The relay publishes every event to NATS JetStream (stream BILLING); the
    render consumer turns each closed invoice into a PDF and UBL XML, the deliver
    consumer sends it by its bill group's channel (email, an .eml in
    BILLRUN_HOME/outbox, or none). Uses BILLRUN_NATS_URL, or an embedded
    nats-server under BILLRUN_HOME. Stops gracefully: the message in hand is
    finished, and nothing unacknowledged is lost. Use -v to watch it work.
    """
    log_verbosely(verbose)
    with runtime() as rt, nats_url(rt.settings) as url:
        output.errors.print(f"worker: NATS {url}; press Ctrl-C to stop", highlight=False)
        until_signalled(lambda stop: run_worker(rt, url, stop))
