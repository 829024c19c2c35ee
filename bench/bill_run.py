"""Bill-run benchmark: accounts/s and events/s of a real bill run on PostgreSQL,
against the bare eventsourcing library's batched write ceiling measured in the
same run.

    python bench/bill_run.py                       # 100,000 accounts, readable output
    python bench/bill_run.py --accounts 20000 --json
    python bench/bill_run.py --accounts 20000 --workers 4   # see docs/scaling.md
    python bench/bill_run.py --accounts 1000000 --no-reference --explain   # by hand

Setup (not timed): a throwaway database, N accounts imported through
`importing.import_accounts` (one monthly advance package, one usage record and one
one-off charge each), and a run scheduled for April 2026, so every account gets
one invoice of three lines (package, usage, charge). The accounts are imported
in files of at most `--import-file-size` (100,000) accounts, each file one
transaction as `billrun import` makes it, so a million accounts are ten files
(one file is held in memory whole until it is saved). Timed: the
`BillRunExecutor` that `billrun run execute` uses. Then, on the same database,
the ceiling: a plain `eventsourcing.application.Application` (the library's own
mapper, JSONTranscoder and PostgresApplicationRecorder) saves as many events as
the run wrote, in `app.save()` batches of as many events as one run transaction,
with stored states padded to the run's average size. Only the `save()` calls are
timed. With `--explain`, EXPLAIN (ANALYZE, BUFFERS) of the run's two hot
queries (the next batch's positions, and a batch's events) at the end. The run's
throughput and RSS are also reported per tenth of the run (`curve`), so growth
within a run shows. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import itertools
import json
import math
import sys
import time
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

from application.runs.check import BILL_GROUP_CONFIGURED, count_in_scope, missing_rates
from application.runs.executor import BillRunExecutor, Progress
from application.shared.app import Billing
from bench.common import (
    GcTimer,
    RssSampler,
    WaitSampler,
    cpu_seconds,
    current_rss_mb,
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
from domain.billing.events import AccountOpened
from domain.runs.events import RunBatchCompleted
from domain.runs.settings import Selection
from infrastructure.persistence import ArrayInsertRecorder, eventsourcing_environment
from infrastructure.topics import topic_of

# The accounts and the run are those of bench/fixtures.py, shared by every bench.
ACCOUNT_OPENED = topic_of(AccountOpened)


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


def longest_commit_gap(billing: Billing, run_id: UUID) -> float:
    """The longest time between two of the run's billing checkpoints: what the
    workers' patience (BILLRUN_BATCH_ACK_WAIT) must stay above (docs/scaling.md)."""
    stamps = [e.timestamp for e in billing.events.get(run_id) if isinstance(e, RunBatchCompleted)]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    return round(max(gaps, default=0.0), 3)


def import_in_files(billing: Billing, accounts: int, file_size: int) -> dict[str, Any]:
    """Import the bench's accounts in files of at most `file_size` accounts, each
    file built just before its import (so one file is in memory at a time) and
    saved in its own transaction, as `billrun import` saves a file."""
    events = 0
    build_seconds = import_seconds = 0.0
    files: list[float] = []
    for first in range(1, accounts + 1, file_size):
        size = min(file_size, accounts + 1 - first)
        with stopwatch() as build:
            document = import_document(size, usage_and_charges=True, first=first)
        with stopwatch() as importing:
            summary = import_accounts(billing, document, "bench")
        del document
        build_seconds += build[0]
        import_seconds += importing[0]
        events += summary.events
        files.append(round(size / importing[0], 1))
        log(f"imported accounts {first:,}..{first + size - 1:,}: {summary.events:,} events "
            f"in {importing[0]:.1f}s ({build[0]:.1f}s to build)")  # fmt: skip
    return {
        "import_events": events,
        "import_seconds": round(import_seconds, 3),
        "build_seconds": round(build_seconds, 3),
        "import_accounts_per_s": round(accounts / import_seconds, 1),
        "import_files": len(files),
        "import_accounts_per_s_by_file": files,
    }


class Curve:
    """The run's throughput and RSS per tenth of its accounts, from the executor's
    progress reports: a run whose cost grows with the accounts already billed (a
    query plan degrading with the table, memory held per batch) shows a falling
    rate or a rising RSS from one tenth to the next."""

    def __init__(self, accounts: int) -> None:
        self.step = max(1, accounts // 10)
        self.next_mark = self.step
        self.started = time.perf_counter()
        self.last = (self.started, 0)
        self.points: list[dict[str, float]] = []

    def __call__(self, progress: Progress) -> None:
        if progress.seen < self.next_mark:
            return
        now = time.perf_counter()
        then, seen = self.last
        self.points.append(
            {
                "seen": progress.seen,
                "accounts_per_s": round((progress.seen - seen) / (now - then), 1),
                "rss_mb": round(current_rss_mb(), 1),
            }
        )
        self.last = (now, progress.seen)
        while self.next_mark <= progress.seen:
            self.next_mark += self.step


# The run's two hot queries, as infrastructure/event_store.py sends them: the next
# batch's positions (EventStoreQueries.positions) and its events (events_of_many).
_POSITIONS = (
    "SELECT notification_id, originator_id FROM {table} WHERE topic = %s "
    "AND notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
)
_EVENTS = (
    "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state "
    "FROM unnest(%s::uuid[], %s::bigint[]) WITH ORDINALITY AS f(id, after, n) "
    "CROSS JOIN LATERAL ("
    " SELECT notification_id, originator_id, originator_version, topic, state FROM {table} "
    " WHERE originator_id = f.id AND originator_version > f.after "
    " ORDER BY originator_version) e ORDER BY f.n, e.originator_version"
)


# Reads a run makes once, before and after its batches (count_in_scope, the bill
# groups that close after the run): by topic, so they scanned the whole log until
# the (topic, notification_id) index.
_COUNT_OPENED = "SELECT count(*) FROM {table} WHERE topic = %s AND notification_id <= %s"
_BILL_GROUPS = "SELECT DISTINCT originator_id FROM {table} WHERE topic = %s"


def time_per_run_reads(billing: Billing, head: int) -> dict[str, float]:
    """Milliseconds of each once-per-run read, as the executor makes it."""
    run = billing.get_run(RUN_ID)
    reads = {
        "count_in_scope": lambda: count_in_scope(billing, run, head),
        "missing_rates": lambda: missing_rates(billing, run, head),
        "bill_groups": lambda: billing.queries.originators(BILL_GROUP_CONFIGURED),
    }
    timings = {}
    for name, read in reads.items():
        started = time.perf_counter()
        read()
        timings[name] = round((time.perf_counter() - started) * 1000, 1)
    return timings


def _cut(line: str, width: int = 160) -> str:
    return line if len(line) <= width else line[:width] + " ..."


def explain_hot_queries(url: str, table: str, batch_size: int) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the positions and events queries for a batch in
    the middle of the accounts (a cursor half-way through the log)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY notification_id), "
            f"max(notification_id) FROM {table} WHERE topic = %s",
            (ACCOUNT_OPENED,),
        ).fetchone()
        assert row is not None
        middle, head = row
        positions = conn.execute(
            f"SELECT originator_id FROM {table} WHERE topic = %s AND notification_id > %s "
            "ORDER BY notification_id LIMIT %s",
            (ACCOUNT_OPENED, middle, batch_size),
        ).fetchall()
        ids = [r[0] for r in positions]
        plans = {}
        for name, sql, params in (
            ("positions", _POSITIONS, (ACCOUNT_OPENED, middle, head, batch_size)),
            ("events_of_batch", _EVENTS, (ids, [0] * len(ids))),
            ("count_opened", _COUNT_OPENED, (ACCOUNT_OPENED, head)),
            ("bill_groups", _BILL_GROUPS, (BILL_GROUP_CONFIGURED,)),
        ):
            rows = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + sql.format(table=table), params
            ).fetchall()
            # The batch's 500 ids make one line of the plan 20 KB long: cut it.
            plans[name] = "\n".join(_cut(r[0]) for r in rows)
    return plans


def bench(
    accounts: int,
    batch_size: int,
    profile: Path | None,
    array_reference: bool = True,
    workers: int = 0,
    nats_url: str | None = None,
    file_size: int = 100_000,
    explain: bool = False,
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
            log(f"importing {accounts:,} accounts in files of at most {file_size:,}")
            with stopwatch() as setup:
                imported = import_in_files(billing, accounts, file_size)
                schedule_run(billing, RUN_ID, PERIOD, None, Selection())
                settle(url, [billing.queries.table_name])
            gc.collect()
            head = billing.queries.head()
            log(f"executing run {RUN_ID} in batches of {batch_size}, {workers} workers")
            profiler = cProfile.Profile() if profile else None
            curve = Curve(accounts)
            with (
                batch_workers(workers, url, nats, billing)
                if workers
                else contextlib.nullcontext(None) as pool
            ):
                dispatch = pool.dispatch if pool else None
                workers_cpu = pool.cpu_seconds() if pool else 0.0
                cpu_before = cpu_seconds()
                with (
                    RssSampler() as rss,
                    GcTimer() as collector,
                    WaitSampler(url) as waits,
                    stopwatch() as timed,
                ):
                    if profiler:
                        profiler.enable()
                    executor = BillRunExecutor(
                        billing, batch_size, on_progress=curve, dispatch=dispatch
                    )
                    execution = executor.execute(RUN_ID)
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
            log(f"run wrote {events:,} events in {timed[0]:.1f}s")
            per_run_reads_ms = time_per_run_reads(billing, head)
            log(f"once-per-run reads (ms): {per_run_reads_ms}")
            plans = None
            if explain:
                log("EXPLAIN ANALYZE of the hot queries")
                plans = explain_hot_queries(url, billing.queries.table_name, batch_size)
            log("measuring the ceiling")
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
                curve=curve.points,
                batches=run.batches,
                longest_commit_gap_s=longest_commit_gap(billing, run.id),
                database_waits=waits.summary(),
                conflicts=execution.conflicts,
                events_per_transaction=per_transaction,
                state_bytes=round(state_bytes),
                setup_seconds=round(setup[0], 3),
                **imported,
                ceiling=ceiling,
                array_insert_ceiling=reference,
                ratio_to_array_insert_ceiling=(
                    round(events / timed[0] / reference["events_per_s"], 3) if reference else None
                ),
                per_run_reads_ms=per_run_reads_ms,
                plans=plans,
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
        _waits_line(r),
        f"peak RSS: {r['peak_rss_mb']:,.0f} MB (whole process, import included); "
        f"during the run {r['run_rss_start_mb']:,.0f} -> {r['run_rss_peak_mb']:,.0f} MB "
        f"(+{r['run_rss_growth_mb']:,.0f} MB)",
        f"setup (not timed): {r['setup_seconds']:.1f} s, import {r['import_seconds']:.1f} s "
        f"({r['import_accounts_per_s']:,.0f} accounts/s, {r['import_events']:,} events, "
        f"{r['import_files']} files)",
        "by tenth of the run: accounts/s "
        + " ".join(f"{p['accounts_per_s']:,.0f}" for p in r["curve"])
        + "; RSS MB "
        + " ".join(f"{p['rss_mb']:,.0f}" for p in r["curve"]),
        "once-per-run reads (ms): "
        + ", ".join(f"{name} {ms:,.1f}" for name, ms in r["per_run_reads_ms"].items()),
        *(f"{name}:\n{plan}" for name, plan in (r["plans"] or {}).items()),
        f"PostgreSQL {pg['version']} ({pg['source']}, shared_buffers {pg['shared_buffers']}, "
        f"synchronous_commit {pg['synchronous_commit']}, fsync {pg['fsync']})",
        f"machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"load average {m['load_average_before']} before / {m['load_average_after']} after",
        f"source: commit {r['source']['commit']}, "
        f"{r['source']['modified_files']} tracked files modified",
        "targets: " + ", ".join(f"{k} {'ok' if ok else 'MISSED'}" for k, ok in verdict.items()),
    ]
    return "\n".join(lines)


def _waits_line(r: dict[str, Any]) -> str:
    w = r["database_waits"]
    top = ", ".join(f"{k} {n}" for k, n in list(w["backend_waits"].items())[:3])
    return (
        f"database during the run: a backend waiting on a lock in "
        f"{w['share_with_a_lock_wait']:.0%} of {w['samples']} samples; "
        f"longest gap between commits {r['longest_commit_gap_s']:.1f} s; waits: {top}"
    )


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
    parser.add_argument(
        "--import-file-size",
        type=int,
        default=100_000,
        help="accounts per imported file, each one transaction (default: 100000)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="EXPLAIN (ANALYZE, BUFFERS) the run's hot queries after the run",
    )
    args = parser.parse_args(argv)
    if min(args.accounts, args.batch_size, args.import_file_size) < 1 or args.workers < 0:
        parser.error(
            "--accounts, --batch-size and --import-file-size must be at least 1, "
            "--workers at least 0"
        )
    result = bench(
        args.accounts,
        args.batch_size,
        args.profile,
        not args.no_reference,
        args.workers,
        args.nats_url,
        args.import_file_size,
        args.explain,
    )
    print(json.dumps(result, indent=2) if args.json else human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
