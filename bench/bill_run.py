"""Bill-run benchmark: accounts/s and events/s of a real bill run on PostgreSQL,
against the bare eventsourcing library's batched write ceiling measured in the
same run.

    python bench/bill_run.py                       # 100,000 accounts, readable output
    python bench/bill_run.py --accounts 20000 --json
    python bench/bill_run.py --accounts 20000 --workers 4   # see docs/scaling.md

Setup (not timed): a throwaway database, N accounts imported through
`importing.import_accounts` (one monthly advance package, one usage record and one
one-off charge each), and a run scheduled for April 2026, so every account gets
one invoice of three lines (package, usage, charge). Timed: the
`BillRunExecutor` that `billrun run execute` uses. Then, on the same database,
the ceiling: a plain `eventsourcing.application.Application` (the library's own
mapper, JSONTranscoder and PostgresApplicationRecorder) saves as many events as
the run wrote, in `app.save()` batches of as many events as one run transaction,
with stored states padded to the run's average size. Only the `save()` calls are
timed. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import math
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

from application.billing.importing import import_accounts
from application.runs.scheduling import schedule_run

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from application.runs.executor import BillRunExecutor
from application.shared.app import Billing
from bench.common import (
    GcTimer,
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
    stopwatch,
    throwaway_database,
)
from bench.fixtures import PERIOD, RUN_ID, import_document
from bench.workers import batch_workers, nats_for_bench
from domain.runs.settings import Selection
from infrastructure.persistence import ArrayInsertRecorder, eventsourcing_environment

# The accounts and the run are those of bench/fixtures.py, shared by every bench.


# The ceiling ------------------------------------------------------------------------


class Filler(Aggregate):
    """One library aggregate per event: `Created` with a payload of a chosen size."""

    @event("Created")
    def __init__(self, payload: str) -> None:
        self.payload = payload


class Ceiling(Application[UUID]):
    """The library's defaults: its Mapper, JSONTranscoder, PostgresApplicationRecorder."""

    name = "BenchCeiling"


class ArrayInsertCeiling(Application[UUID]):
    """For reference only: the same, but with billrun's ArrayInsertRecorder."""

    name = "BenchArrayInsertCeiling"


def library_environment(url: str, recorder_topic: str | None = None) -> dict[str, str]:
    """The same server settings, with the library's default mapper, transcoder and
    recorder (billrun's three topics removed), or the given recorder."""
    env = eventsourcing_environment(url)
    for key in ("MAPPER_TOPIC", "TRANSCODER_TOPIC", "APPLICATION_RECORDER_TOPIC"):
        env.pop(key)
    if recorder_topic:
        env["APPLICATION_RECORDER_TOPIC"] = recorder_topic
    return env


def measure_ceiling(
    url: str,
    events: int,
    per_transaction: int,
    state_bytes: int,
    app_class: type[Application[UUID]] = Ceiling,
) -> dict[str, Any]:
    recorder_topic = None if app_class is Ceiling else get_topic(ArrayInsertRecorder)
    app = app_class(library_environment(url, recorder_topic))
    try:
        # Pad the payload so the stored states are as large as the run's.
        empty = app.mapper.to_stored_event(Filler("").collect_events()[0])
        payload = "x" * max(0, state_bytes - len(empty.state))
        warm = Filler(payload)  # first save prepares statements; not timed
        app.save(warm)
        seconds = cpu = 0.0
        written = 0
        transactions = 0
        while written < events:
            size = min(per_transaction, events - written)
            aggregates = [Filler(payload) for _ in range(size)]
            cpu_before = cpu_seconds()
            with stopwatch() as elapsed:
                app.save(*aggregates)
            seconds += elapsed[0]
            cpu += cpu_seconds() - cpu_before
            written += size
            transactions += 1
        stored = app.mapper.to_stored_event(Filler(payload).collect_events()[0])
        return {
            "events": written,
            "transactions": transactions,
            "events_per_transaction": per_transaction,
            "state_bytes": len(stored.state),
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "events_per_s": round(written / seconds, 1) if seconds else math.inf,
            "recorder": type(app.recorder).__qualname__,
            "transcoder": type(app.mapper.transcoder).__qualname__,
        }
    finally:
        app.close()


# The run ------------------------------------------------------------------------------


def written_since(url: str, table: str, after: int) -> tuple[int, float]:
    """Events written after notification id `after`, and their mean state size."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT count(*), coalesce(avg(octet_length(state)), 0) FROM {table} "
            "WHERE notification_id > %s",
            (after,),
        ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


def bench(
    accounts: int,
    batch_size: int,
    profile: Path | None,
    array_reference: bool = True,
    workers: int = 0,
    nats_url: str | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"accounts": accounts, "batch_size": batch_size, "workers": workers}
    revision = source_revision()
    load_before = load_average()
    with (
        postgres_server() as server,
        throwaway_database(server.url) as url,
        nats_for_bench(nats_url) if workers else contextlib.nullcontext("") as nats,
    ):
        billing = Billing(eventsourcing_environment(url))
        try:
            log(f"building an import document of {accounts:,} accounts")
            with stopwatch() as setup:
                with stopwatch() as build:
                    document = import_document(accounts, usage_and_charges=True)
                log(f"importing through importing.import_accounts ({build[0]:.1f}s to build)")
                with stopwatch() as importing:
                    summary = import_accounts(billing, document, "bench")
                del document
                log(f"imported {summary.events:,} events in {importing[0]:.1f}s")
                schedule_run(billing, RUN_ID, PERIOD, None, Selection())
                settle(url, [billing.queries.table_name])
            gc.collect()
            head = billing.queries.head()
            log(f"executing run {RUN_ID} in batches of {batch_size}, {workers} workers")
            profiler = cProfile.Profile() if profile else None
            with (
                batch_workers(workers, url, nats, billing)
                if workers
                else contextlib.nullcontext(None) as pool
            ):
                dispatch = pool.dispatch if pool else None
                workers_cpu = pool.cpu_seconds() if pool else 0.0
                cpu_before = cpu_seconds()
                with RssSampler() as rss, GcTimer() as collector, stopwatch() as timed:
                    if profiler:
                        profiler.enable()
                    execution = BillRunExecutor(billing, batch_size, dispatch=dispatch).execute(
                        RUN_ID
                    )
                    if profiler:
                        profiler.disable()
                cpu = cpu_seconds() - cpu_before
                workers_cpu = (pool.cpu_seconds() - workers_cpu) if pool else 0.0
            if profiler and profile:
                profiler.dump_stats(profile)
                log(f"profile of the timed section written to {profile}")
            run = execution.run
            stats = run.statistics
            if not (stats.accounts_billed == stats.invoices == stats.lines // 3 == accounts):
                raise SystemExit(f"the run did not bill every account once: {stats}")
            if billing.get_invoice_sequence().last_number != accounts:
                raise SystemExit("invoice numbers are not 1..N without gaps")
            events, state_bytes = written_since(url, billing.queries.table_name, head)
            log(f"run wrote {events:,} events in {timed[0]:.1f}s; measuring the ceiling")
            # RunStarted and RunCompleted are one-event transactions; the rest are batches.
            per_transaction = round((events - 2) / max(run.batches, 1))
            ceiling = measure_ceiling(url, events, per_transaction, round(state_bytes))
            reference = None
            if array_reference:
                log("measuring the same with ArrayInsertRecorder (reference only)")
                reference = measure_ceiling(
                    url, events, per_transaction, round(state_bytes), ArrayInsertCeiling
                )
            result.update(
                events=events,
                seconds=round(timed[0], 3),
                cpu_seconds=round(cpu, 3),
                workers_cpu_seconds=round(workers_cpu, 3),
                gc_seconds=round(collector.total_seconds, 3),
                gc_collections=collector.collections,
                gc_seconds_by_generation=[round(t, 3) for t in collector.seconds],
                accounts_per_s=round(accounts / timed[0], 1),
                events_per_s=round(events / timed[0], 1),
                ceiling_events_per_s=ceiling["events_per_s"],
                ratio=round(events / timed[0] / ceiling["events_per_s"], 3),
                peak_rss_mb=round(peak_rss_mb(), 1),
                run_rss_start_mb=round(rss.start_mb, 1),
                run_rss_peak_mb=round(rss.peak_mb, 1),
                run_rss_growth_mb=round(rss.peak_mb - rss.start_mb, 1),
                batches=run.batches,
                conflicts=execution.conflicts,
                events_per_transaction=per_transaction,
                state_bytes=round(state_bytes),
                setup_seconds=round(setup[0], 3),
                import_seconds=round(importing[0], 3),
                import_events=summary.events,
                import_accounts_per_s=round(accounts / importing[0], 1),
                ceiling=ceiling,
                array_insert_ceiling=reference,
                ratio_to_array_insert_ceiling=(
                    round(events / timed[0] / reference["events_per_s"], 3) if reference else None
                ),
                postgres={"source": server.source, **postgres_info(url)},
            )
        finally:
            billing.close()
    result["source"] = revision
    result["machine"] = {
        **machine_info(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    return result


# Output -------------------------------------------------------------------------------


def human(r: dict[str, Any]) -> str:
    m, pg, c = r["machine"], r["postgres"], r["ceiling"]
    verdict = {
        "accounts/s >= 2,000": r["accounts_per_s"] >= 2000,
        "ratio >= 0.6": r["ratio"] >= 0.6,
        "peak RSS < 1 GB": r["peak_rss_mb"] < 1024,
    }
    lines = [
        f"bill run: {r['accounts']:,} accounts, batches of {r['batch_size']:,}, "
        f"{_workers(r)} "
        f"({r['batches']} batches, {r['events_per_transaction']:,} events per transaction)",
        f"  {r['seconds']:.2f} s  {r['accounts_per_s']:>10,.0f} accounts/s"
        f"  {r['events_per_s']:>10,.0f} events/s  ({r['events']:,} events,"
        f" {r['state_bytes']} B mean state)",
        f"  {r['cpu_seconds']:.2f} s CPU in this process, {r['gc_seconds']:.2f} s of it"
        " in the garbage collector",
        f"ceiling (plain Application, {c['recorder']} + {c['transcoder']}, same batches):",
        f"  {c['seconds']:.2f} s ({c['cpu_seconds']:.2f} s CPU in this process)"
        f"  {c['events_per_s']:>10,.0f} events/s"
        f"  ({c['events']:,} events, {c['state_bytes']} B state)",
        f"ratio (run events/s / ceiling events/s): {r['ratio']:.2f}",
        *_reference_lines(r),
        f"peak RSS: {r['peak_rss_mb']:,.0f} MB (whole process, import included); "
        f"during the run {r['run_rss_start_mb']:,.0f} -> {r['run_rss_peak_mb']:,.0f} MB "
        f"(+{r['run_rss_growth_mb']:,.0f} MB)",
        f"setup (not timed): {r['setup_seconds']:.1f} s, import {r['import_seconds']:.1f} s "
        f"({r['import_accounts_per_s']:,.0f} accounts/s, {r['import_events']:,} events)",
        f"PostgreSQL {pg['version']} ({pg['source']}, shared_buffers {pg['shared_buffers']}, "
        f"synchronous_commit {pg['synchronous_commit']}, fsync {pg['fsync']})",
        f"machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"load average {m['load_average_before']} before / {m['load_average_after']} after",
        f"source: commit {r['source']['commit']}, "
        f"{r['source']['modified_files']} tracked files modified",
        "targets: " + ", ".join(f"{k} {'ok' if ok else 'MISSED'}" for k, ok in verdict.items()),
    ]
    return "\n".join(lines)


def _workers(r: dict[str, Any]) -> str:
    if not r["workers"]:
        return "in this process"
    return (
        f"by {r['workers']} `billrun worker --batches-only` processes "
        f"({r['workers_cpu_seconds']:.1f} s CPU between them)"
    )


def _reference_lines(r: dict[str, Any]) -> list[str]:
    a = r.get("array_insert_ceiling")
    if not a:
        return []
    return [
        f"reference, same but with billrun's {a['recorder']}: {a['events_per_s']:,.0f} events/s"
        f" ({a['seconds']:.2f} s); run / reference = {r['ratio_to_array_insert_ceiling']:.2f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="default: 100000")
    # 500 accounts x 8 events = 4,000 events per transaction, the size the figures in
    # docs/benchmarks.md have always used. At 8,000 the ceiling's plain library
    # recorder (psycopg executemany in pipeline mode) was seen to hang in ClientRead.
    parser.add_argument(
        "--batch-size", type=int, default=500, help="accounts per transaction (default: 500)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the timed section to this file"
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the reference ceiling measured with billrun's ArrayInsertRecorder",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="bill through N `billrun worker --batches-only` processes over NATS "
        "(`run execute --workers`); 0 (default): in this process",
    )
    parser.add_argument(
        "--nats-url",
        help="NATS for --workers (default: BILLRUN_NATS_URL, BILLRUN_TEST_NATS_URL, "
        "else an embedded server); the bench uses a prefix of its own",
    )
    args = parser.parse_args(argv)
    if args.accounts < 1 or args.batch_size < 1 or args.workers < 0:
        parser.error("--accounts and --batch-size must be at least 1, --workers at least 0")
    result = bench(
        args.accounts,
        args.batch_size,
        args.profile,
        not args.no_reference,
        args.workers,
        args.nats_url,
    )
    print(json.dumps(result, indent=2) if args.json else human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
