"""`billrun history`: every event of a run, an account, an invoice or the whole log,
in commit order."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.table import Table

from application.shared.history import History, HistoryEntry
from entrypoints import output
from entrypoints.common import refusals, runtime
from entrypoints.presenters import resolve_invoice_id
from entrypoints.refusals import UsageError
from entrypoints.representations_invoices import history_line


@refusals
def history(
    run: Annotated[str | None, typer.Option(help="A run: its events and all it caused.")] = None,
    account: Annotated[
        str | None, typer.Option(help="An account: its events and its invoices'.")
    ] = None,
    invoice: Annotated[str | None, typer.Option(help="An invoice (id or number).")] = None,
    all_events: Annotated[
        bool,
        typer.Option("--all", help="The whole log (what no --run/--account/--invoice means)."),
    ] = False,
    start: Annotated[
        int | None,
        typer.Option(
            "--from",
            min=1,
            metavar="N",
            help="The whole log from notification id N on (to resume an export).",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One JSON object per line, streamed (for export).")
    ] = False,
    limit: Annotated[int, typer.Option(help="Rows shown in the table (JSON is never cut).")] = 200,
) -> None:
    """Replay history as an auditor: every stored event with its notification id,
    timestamp, aggregate, version, type and payload, in commit order.

    Each event says who stored it (`by`; in JSON `actor`: the API key's id and
    role, or `cli` and the OS user), when it was recorded (events stored before
    billrun recorded actors have none).

    With --run, --account or --invoice (one of them): that subject's events.
    Without any (or with --all): every stored event, from notification id 1 or
    --from N, up to the last one committed when the command started.

    Exports stream: `billrun history --run 2026-01 --jsonl > run.jsonl` and
    `billrun history --all --from 1 --jsonl > log.jsonl` hold one page of
    events in memory at a time.
    """
    chosen = [name for name, value in (("--run", run), ("--account", account),
              ("--invoice", invoice)) if value is not None]  # fmt: skip
    if len(chosen) > 1:
        raise UsageError(f"name one of --run, --account or --invoice, not {' and '.join(chosen)}")
    if chosen and all_events:
        raise UsageError(f"--all is the whole log; {chosen[0]} is one subject: choose one")
    if chosen and start is not None:
        raise UsageError(f"--from N is for the whole log, not with {chosen[0]}")
    with runtime() as rt:
        reader = History(rt.billing)
        entries: Iterator[HistoryEntry]
        if run is not None:
            entries = reader.of_run(run)
        elif account is not None:
            entries = reader.of_account(account)
        elif invoice is not None:
            entries = reader.of_invoice(resolve_invoice_id(rt, invoice))
        else:
            entries = reader.of_log(start or 1)
        if jsonl:
            write = sys.stdout.write
            for entry in entries:
                write(history_line(entry))
            return
        if json_out:
            output.print_json_array(entry.as_json() for entry in entries)
            return
        print_table(entries, limit)


def print_table(entries: Iterator[HistoryEntry], limit: int) -> None:
    table = Table(title="History (commit order)")
    table.add_column("#", no_wrap=True, min_width=4, justify="right")
    table.add_column("time (UTC)", no_wrap=True, min_width=16)
    table.add_column("aggregate", no_wrap=True, min_width=8)
    table.add_column("v", no_wrap=True, min_width=2, justify="right")
    table.add_column("event", no_wrap=True, min_width=14)
    table.add_column("by", no_wrap=True, min_width=3)
    table.add_column("payload", no_wrap=True)
    # Rich squeezes the narrow columns away before it crops a long cell, so the
    # payload is cut to what the terminal leaves for it (the `by` column is an API
    # key id, 12 characters, or `cli`).
    room = max(output.console.width - 81, 12)
    shown = hidden = 0
    for entry in entries:
        if shown >= limit:
            hidden += 1
            continue
        shown += 1
        payload = json.dumps(entry.payload, separators=(",", ":"))
        table.add_row(
            str(entry.notification_id), entry.timestamp[:16].replace("T", " "),
            entry.aggregate, str(entry.version), entry.event, entry.by,
            payload if len(payload) <= room else payload[: room - 1] + "…",
        )  # fmt: skip
    output.console.print(table)
    if hidden:
        output.console.print(f"... and {hidden} more events (raise --limit, or use --jsonl)")
