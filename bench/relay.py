"""Relay benchmark: events/s the outbox relay publishes to NATS JetStream, beside
the ceiling of bare nats-py async publishing measured in the same run.

    python bench/relay.py                        # 20,000 accounts, readable output
    python bench/relay.py --accounts 5000 --json

Setup (not timed): a throwaway database, N accounts imported and one bill run
executed over them (bench/fixtures.py), so the log is a real bill run's; a
JetStream server (BILLRUN_NATS_URL, else an embedded nats-server under a
temporary home) and streams under unique names, deleted afterwards.

Timed, one after the other, same server, same kind of stream (file storage, one
hour duplicate window), same window of messages in flight:

- the relay: `Relay.run()` from position 0 to the head, as `billrun relay run
  --once` runs it (reading pages, mapping each event to its public form and
  CloudEvents headers, publishing, waiting for every ack, saving the position per
  window); then refused unless the stream holds exactly one message per public
  event. `events` are the log's events relayed (read and mapped, published or
  skipped for having no public form), `messages` the ones published;
- the ceiling: nats-py's own `js.publish_async` with `publish_async_max_pending`
  = the window, as many messages as the relay published, bodies of the relay's mean size and
  the relay's headers (same names, same value sizes), awaiting every ack one
  window at a time. No database, no encoding;
- reference (not in the ratio): the relay's own publishing (`AckWindow`) over
  messages encoded beforehand: the relay minus the database and encoding.

See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.postgres import PostgresApplicationRecorder
from nats.aio.client import Client as NATS

from application.shared.app import Billing
from bench.common import (
    RssSampler,
    cpu_seconds,
    load_average,
    log,
    machine_info,
    peak_rss_mb,
    postgres_info,
    postgres_server,
    settle,
    source_revision,
    throwaway_database,
)
from bench.fixtures import billed_log
from infrastructure.contract import OPENERS
from infrastructure.messaging import StreamNames, connect, ensure_streams
from infrastructure.persistence import eventsourcing_environment
from infrastructure.relay import (
    AckWindow,
    Encoder,
    NotificationLog,
    Outbound,
    Relay,
    RelayPositions,
)
from infrastructure.topics import STORED_TOPICS

TARGET_EVENTS_PER_S = 20_000


def rate(events: int, seconds: float) -> float:
    return round(events / seconds, 1) if seconds > 0 else math.inf


@contextlib.contextmanager
def nats_server() -> Iterator[tuple[str, str]]:
    """BILLRUN_NATS_URL's server if set, else an embedded nats-server under a
    temporary home, stopped and deleted afterwards. Yields (url, source)."""
    url = os.environ.get("BILLRUN_NATS_URL")
    if url:
        yield url, "BILLRUN_NATS_URL"
        return
    from infrastructure.embedded import embedded_nats

    home = Path(tempfile.mkdtemp(prefix="billrun-bench-nats-"))
    try:
        log(f"starting an embedded nats-server under {home}")
        with embedded_nats(home) as embedded_url:
            yield embedded_url, "embedded"
    finally:
        shutil.rmtree(home, ignore_errors=True)


def unique_streams(label: str) -> StreamNames:
    tag = f"{label}{secrets.token_hex(4)}"
    return StreamNames(
        stream=f"BENCH_{tag.upper()}",
        subject_prefix=f"bench-{tag}",
        dead_letter_stream=f"BENCH_{tag.upper()}_DLQ",
        dead_letter_prefix=f"bench-{tag}-dlq",
    )


@contextlib.asynccontextmanager
async def streams(nc: NATS, label: str) -> AsyncIterator[StreamNames]:
    names = unique_streams(label)
    js = nc.jetstream()
    await ensure_streams(js, names)
    try:
        yield names
    finally:
        for name in (names.stream, names.dead_letter_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(name)


async def stored_messages(nc: NATS, stream: str) -> int:
    info = await nc.jetstream().stream_info(stream)
    return int(info.state.messages)


# The relay -------------------------------------------------------------------------------


async def time_relay(
    billing: Billing,
    source: NotificationLog,
    nc: NATS,
    nats_url: str,
    window: int,
    profile: Path | None,
) -> dict[str, Any]:
    positions = RelayPositions(source.datastore)
    positions.create_table()
    async with streams(nc, "relay") as names:
        relay = Relay(source, positions, nats_url, names, window=window)
        gc.collect()
        cpu_before = cpu_seconds()
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        with RssSampler() as rss:
            outcome = await relay.run()
        seconds = time.perf_counter() - started
        if profiler and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        cpu = cpu_seconds() - cpu_before
        stored = await stored_messages(nc, names.stream)
    head = billing.queries.head()
    public = sum(len(page) for page in encoded_pages(source, "billing"))
    if not (stored == outcome.published == public and outcome.position == head) or (
        outcome.duplicates
    ):
        raise SystemExit(
            f"the relay did not publish every public event once: {stored} stored of {public}, "
            f"{outcome}, head {head}"
        )
    return {
        "events": head,
        "messages": outcome.published,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "cpu_us_per_event": round(cpu / head * 1e6, 1),
        "retries": outcome.retries,
        "events_per_s": rate(head, seconds),
        "messages_per_s": rate(outcome.published, seconds),
        "rss_growth_mb": round(rss.peak_mb - rss.start_mb, 1),
    }


def encoded_pages(source: NotificationLog, subject_prefix: str) -> Iterator[list[Outbound]]:
    """The whole log's public messages as the relay encodes them, a page at a time."""
    topics = sorted(STORED_TOPICS[name] for name in OPENERS)
    encoder = Encoder(subject_prefix, "bench", lambda ids: source.openings(ids, topics))
    head, first = source.head(), 1
    while first <= head:
        rows = source.page(first, head, 5000)
        if not rows:
            return
        encoder.prepare(rows)
        yield [m for row in rows if (m := encoder.encode(row)) is not None]
        first = rows[-1][0] + 1


def message_shape(source: NotificationLog) -> dict[str, Any]:
    """Mean body size and the headers of a typical message (mean value sizes)."""
    count = body_bytes = 0
    present: Counter[str] = Counter()
    value_bytes: Counter[str] = Counter()
    for page in encoded_pages(source, "billing"):
        for message in page:
            count += 1
            body_bytes += len(message.body)
            for name, value in message.headers.items():
                present[name] += 1
                value_bytes[name] += len(value)
    return {
        "body_bytes": round(body_bytes / count),
        # A header only some messages have (Billrun-Run-Id) is kept if most have it.
        "headers": {
            name: "x" * round(value_bytes[name] / present[name])
            for name in sorted(present)
            if present[name] * 2 >= count
        },
    }


# The ceiling -----------------------------------------------------------------------------


async def time_ceiling(nc: NATS, count: int, window: int, shape: dict[str, Any]) -> dict[str, Any]:
    """nats-py's own async publishing: `publish_async` a window, await its acks, repeat."""
    body = b"x" * shape["body_bytes"]
    template: dict[str, str] = shape["headers"]
    id_width = len(template.get("Nats-Msg-Id", "1"))
    async with streams(nc, "ceiling") as names:
        js = nc.jetstream(publish_async_max_pending=window)
        subject = f"{names.subject_prefix}.invoice.InvoiceClosed"
        gc.collect()
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        for start in range(0, count, window):
            futures = []
            for i in range(start, min(start + window, count)):
                headers = dict(template)
                headers["Nats-Msg-Id"] = str(i + 1).rjust(id_width, "0")
                futures.append(await js.publish_async(subject, body, headers=headers))
            await asyncio.gather(*futures)
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
        stored = await stored_messages(nc, names.stream)
    if stored != count:
        raise SystemExit(f"the ceiling stored {stored} messages of {count}")
    return {
        "events": count,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "cpu_us_per_event": round(cpu / count * 1e6, 1),
        "events_per_s": rate(count, seconds),
    }


async def time_transport(nc: NATS, source: NotificationLog, window: int) -> dict[str, Any]:
    """The relay's publishing alone: AckWindow over messages encoded beforehand."""
    async with streams(nc, "transport") as names:
        messages = [m for page in encoded_pages(source, names.subject_prefix) for m in page]
        publisher = AckWindow(nc, names.stream)
        await publisher.open()
        gc.collect()
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        for start in range(0, len(messages), window):
            chunk = messages[start : start + window]
            result = await publisher.publish(chunk, 10.0)
            if result.acked != len(chunk):
                raise SystemExit(f"the transport reference failed: {result}")
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
        await publisher.close()
        stored = await stored_messages(nc, names.stream)
    if stored != len(messages):
        raise SystemExit(f"the transport reference stored {stored} of {len(messages)}")
    return {
        "events": len(messages),
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "cpu_us_per_event": round(cpu / len(messages) * 1e6, 1),
        "events_per_s": rate(len(messages), seconds),
    }


# The benchmark ---------------------------------------------------------------------------


def bench(
    accounts: int, batch_size: int, window: int, reference: bool, profile: Path | None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "accounts": accounts,
        "window": window,
        "profiled": profile is not None,
    }
    revision = source_revision()
    load_before = load_average()
    with (
        postgres_server() as server,
        throwaway_database(server.url, "billrun_bench_relay") as url,
        nats_server() as (nats_url, nats_source),
    ):
        billing = Billing(eventsourcing_environment(url))
        try:
            fixture = billed_log(billing, accounts, batch_size)
            settle(url, ["billing_events"])
            source = NotificationLog(cast(PostgresApplicationRecorder, billing.recorder))
            shape = message_shape(source)

            async def measure() -> dict[str, Any]:
                nc = await connect(nats_url, name="billrun-bench")
                try:
                    log(f"relay: {fixture.head:,} events, window {window:,}")
                    relay = await time_relay(billing, source, nc, nats_url, window, profile)
                    sent = relay["messages"]
                    log(f"ceiling: bare publish_async of {sent:,} messages")
                    ceiling = await time_ceiling(nc, sent, window, shape)
                    transport = await time_transport(nc, source, window) if reference else None
                    server_version = nc.connected_server_version
                finally:
                    await nc.close()
                return {
                    "relay": relay,
                    "ceiling": ceiling,
                    "transport": transport,
                    "server": str(server_version),
                }

            measured = asyncio.run(measure())
        finally:
            billing.close()
        relay_rate = measured["relay"]["events_per_s"]
        ceiling_rate = measured["ceiling"]["events_per_s"]
        result.update(
            events=fixture.head,
            messages=measured["relay"]["messages"],
            relay_events_per_s=relay_rate,
            relay_messages_per_s=measured["relay"]["messages_per_s"],
            ceiling_events_per_s=ceiling_rate,
            # Messages against messages: the ceiling publishes what the relay published.
            ratio=round(measured["relay"]["messages_per_s"] / ceiling_rate, 3),
            import_events=fixture.import_events,
            run_events=fixture.run_events,
            setup_seconds=round(fixture.import_seconds + fixture.run_seconds, 3),
            message=shape,
            relay=measured["relay"],
            ceiling=measured["ceiling"],
            transport=measured["transport"],
            peak_rss_mb=round(peak_rss_mb(), 1),
            nats={"source": nats_source, "version": measured["server"]},
            postgres={"source": server.source, **postgres_info(url)},
        )
    result["source"] = revision
    result["machine"] = {
        **machine_info(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    return result


# Output ----------------------------------------------------------------------------------


def human(r: dict[str, Any]) -> str:
    m, pg, rel, ceil = r["machine"], r["postgres"], r["relay"], r["ceiling"]
    verdict = r["relay_events_per_s"] >= TARGET_EVENTS_PER_S
    lines = [
        f"relay over a {r['accounts']:,}-account bill run: {r['events']:,} events "
        f"({r['import_events']:,} from the import, {r['run_events']:,} from the run), "
        f"{r['messages']:,} of them public (published), "
        f"window {r['window']:,}, mean body {r['message']['body_bytes']} bytes, "
        f"{len(r['message']['headers'])} headers",
        f"relay    {rel['events_per_s']:>10,.0f} events/s, {rel['messages_per_s']:,.0f} "
        f"messages/s  ({rel['seconds']:.2f} s, "
        f"{rel['cpu_us_per_event']:.0f} us CPU per event, {rel['retries']} retries, "
        f"RSS +{rel['rss_growth_mb']:.0f} MB)",
        f"ceiling  {ceil['events_per_s']:>10,.0f} messages/s  ({ceil['seconds']:.2f} s, "
        f"{ceil['cpu_us_per_event']:.0f} us CPU per event; nats-py js.publish_async)",
        f"ratio (relay messages/s / ceiling): {r['ratio']:.2f}",
    ]
    if r["transport"]:
        t = r["transport"]
        lines.append(
            f"reference: the relay's AckWindow alone {t['events_per_s']:>10,.0f} events/s "
            f"({t['seconds']:.2f} s, {t['cpu_us_per_event']:.0f} us CPU per event)"
        )
    lines += [
        f"setup (not timed): {r['setup_seconds']:.1f} s; peak RSS {r['peak_rss_mb']:,.0f} MB",
        f"NATS {r['nats']['version']} ({r['nats']['source']}); PostgreSQL {pg['version']} "
        f"({pg['source']}, synchronous_commit {pg['synchronous_commit']}, fsync {pg['fsync']})",
        f"machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"load average {m['load_average_before']} before / {m['load_average_after']} after",
        f"target: relay >= {TARGET_EVENTS_PER_S:,} events/s {'ok' if verdict else 'MISSED'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20_000, help="default: 20000")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="accounts per run transaction (setup)"
    )
    parser.add_argument("--window", type=int, default=4000, help="messages in flight (4000)")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the AckWindow-alone reference"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="write a cProfile of the relay into FILE"
    )
    args = parser.parse_args(argv)
    if min(args.accounts, args.batch_size, args.window) < 1:
        parser.error("--accounts, --batch-size and --window must be at least 1")
    result = bench(args.accounts, args.batch_size, args.window, not args.no_reference, args.profile)
    print(json.dumps(result, indent=2) if args.json else human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
