"""Projection benchmark: how fast the read models rebuild (events/s) and how
fast a run's history exports, over the log of a real bill run, each beside the
bare rate of reading the same notification log in the same run.

    python bench/projections.py                      # 100,000 accounts, readable output
    python bench/projections.py --accounts 20000 --json

Setup (not timed): a throwaway database, N accounts imported and one bill run
executed over them (bench/fixtures.py). Timed, one after the other on the same
database:

- the read ceiling: the whole log through `app.recorder.select_notifications`
  in pages of the rebuild's size, timed apart from decoding every notification
  with the app's mapper (`read_raw` = reading alone, `read_ceiling` = reading
  plus mapping, the honest ceiling for a rebuild);
- `rebuild(read_side, name)` for each rebuildable read model, each followed (not
  timed) by a check that the rebuilt view holds the run's invoices, lines and
  totals; the headline is the notifications the rebuilds read / their seconds.
  Each rebuild's time is split into reading, mapping, the view's `write()`,
  tracking and commits, and the rest (creating tables, switching, dropping);
- the run's history exported like `billrun history --run ID --jsonl`:
  `History.of_run` and `json.dumps` per entry, written to /dev/null.

See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from psycopg.sql import SQL

from application.shared.app import Billing
from application.shared.history import History
from bench.common import (
    cpu_seconds,
    load_average,
    log,
    machine_info,
    peak_rss_mb,
    postgres_info,
    postgres_server,
    settle,
    stopwatch,
    throwaway_database,
)
from bench.fixtures import RUN_ID, billed_log
from domain.shared.ids import run_uuid
from infrastructure.persistence import eventsourcing_environment
from projections.catalog import READ_MODELS, ReadSide
from projections.invoices import InvoicesView
from projections.rebuild import rebuild
from projections.run_report import RunReportView
from projections.runs import RunStatusView
from projections.view import View

try:
    from bench.common import source_revision
except ImportError:  # a bench/common.py from before source_revision()

    def source_revision() -> dict[str, Any]:
        return {"commit": None, "modified_files": None}


TARGET_EVENTS_PER_S = 20_000


def rate(events: int, seconds: float) -> float:
    return round(events / seconds, 1) if seconds > 0 else math.inf


@contextlib.contextmanager
def profiled(directory: Path | None, name: str) -> Iterator[None]:
    """cProfile the block into `directory/name.prof` when a directory is given."""
    if directory is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        directory.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(directory / f"{name}.prof")


# The read ceiling ---------------------------------------------------------------------


def read_log(billing: Billing, page_size: int, decode: bool = True) -> dict[str, Any]:
    """Read the log up to its head in pages as `catch_up` does (same call, same page
    size, same stop), timing the reads apart from mapping each notification to its
    domain event. Nothing is written."""
    head = billing.queries.head()
    select = billing.recorder.select_notifications
    to_domain_event = billing.mapper.to_domain_event
    position = events = pages = 0
    read_s = map_s = 0.0
    cpu_before = cpu_seconds()
    while position < head:
        started = time.perf_counter()
        page = select(position + 1, page_size, stop=head)
        read = time.perf_counter()
        if decode:
            for notification in page:
                to_domain_event(notification)
        read_s += read - started
        map_s += time.perf_counter() - read
        events += len(page)
        pages += 1
        position = page[-1].id if len(page) == page_size else head
    return {
        "events": events,
        "pages": pages,
        "read_seconds": round(read_s, 3),
        "map_seconds": round(map_s, 3),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 3),
        "read_events_per_s": rate(events, read_s),
        "read_and_map_events_per_s": rate(events, read_s + map_s),
    }


# Rebuilds -----------------------------------------------------------------------------


@contextlib.contextmanager
def patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """Replace an attribute of an object or class for the block, then restore it."""
    own = name in vars(owner)
    original = vars(owner).get(name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


@contextlib.contextmanager
def instrumented(billing: Billing, view_class: type[View]) -> Iterator[dict[str, float]]:
    """Count the notifications (and pages) a rebuild reads, and split its time: reading
    (`select_notifications`), mapping (the mapper's `to_domain_event`), the view's
    `write()` (its SQL), and the rest of `View.apply` (advisory lock, tracking
    record, commit). What is left of the rebuild's time is its fixed cost: creating
    the new tables, the registry switch, dropping the old version. Each timing costs
    two clock reads per call, well under 1 % of a call here."""
    clock = time.perf_counter
    counts = {"events": 0, "pages": 0, "read_seconds": 0.0, "map_seconds": 0.0,
              "write_seconds": 0.0, "apply_seconds": 0.0}  # fmt: skip
    select, to_domain_event = billing.recorder.select_notifications, billing.mapper.to_domain_event
    write, apply = view_class.write, view_class.apply

    def timed_select(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        page = select(*args, **kwargs)
        counts["read_seconds"] += clock() - started
        counts["events"] += len(page)
        counts["pages"] += 1
        return page

    def timed_to_domain_event(notification: Any) -> Any:
        started = clock()
        event = to_domain_event(notification)
        counts["map_seconds"] += clock() - started
        return event

    def timed_write(view: View, *args: Any, **kwargs: Any) -> None:
        started = clock()
        write(view, *args, **kwargs)
        counts["write_seconds"] += clock() - started

    def timed_apply(view: View, *args: Any, **kwargs: Any) -> bool:
        started = clock()
        applied = apply(view, *args, **kwargs)
        counts["apply_seconds"] += clock() - started
        return applied

    with (
        patched(billing.recorder, "select_notifications", timed_select),
        patched(billing.mapper, "to_domain_event", timed_to_domain_event),
        patched(view_class, "write", timed_write),
        patched(view_class, "apply", timed_apply),
    ):
        yield counts


def time_rebuild(
    read_side: ReadSide, name: str, page_size: int, profile: Path | None
) -> dict[str, Any]:
    gc.collect()
    cpu_before = cpu_seconds()
    with (
        instrumented(read_side.app, READ_MODELS[name].view_class) as counts,
        profiled(profile, f"rebuild_{name}"),
        stopwatch() as elapsed,
    ):
        outcome = rebuild(read_side, name, page_size=page_size)
    events = int(counts["events"])
    read_s, map_s = counts["read_seconds"], counts["map_seconds"]
    write_s, apply_s = counts["write_seconds"], counts["apply_seconds"]
    return {
        "events": events,
        "pages": int(counts["pages"]),
        "positions": outcome.positions,
        "seconds": round(elapsed[0], 3),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 3),
        "events_per_s": rate(events, elapsed[0]),
        "read_seconds": round(read_s, 3),
        "map_seconds": round(map_s, 3),
        "write_seconds": round(write_s, 3),
        "tracking_seconds": round(apply_s - write_s, 3),
        "other_seconds": round(elapsed[0] - read_s - map_s - apply_s, 3),
        "read_and_map_events_per_s": rate(events, read_s + map_s),
        "active": outcome.active,
    }


def check_view(read_side: ReadSide, name: str, accounts: int) -> None:
    """Refuse to report if a rebuilt view does not hold exactly the run's results."""
    view = read_side.view(name)
    problem = None
    if isinstance(view, InvoicesView):
        with view.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'closed') AS closed, "
                    "count(DISTINCT number) AS numbers, min(number) AS first, "
                    "max(number) AS last, coalesce(sum(line_count), 0) AS line_count, "
                    "(SELECT count(*) FROM {}) AS lines FROM {}"
                ).format(view.table("invoice_lines"), view.table("invoices"))
            )
            row = curs.fetchone()
        expected = {"n": accounts, "closed": accounts, "numbers": accounts, "first": 1,
                    "last": accounts, "line_count": accounts, "lines": accounts}  # fmt: skip
        if row is None or {k: row[k] for k in expected} != expected:
            problem = f"expected {expected}, found {row}"
    elif isinstance(view, RunStatusView):
        run = view.get(RUN_ID)
        if run is None or run.status != "completed" or run.counters["accounts_billed"] != accounts:
            problem = f"run {RUN_ID}: {run}"
    elif isinstance(view, RunReportView):
        report = view.report(RUN_ID)
        invoiced = sum(
            int(c.get("invoices", 0)) for c in (report or {}).get("per_currency", {}).values()
        )
        if report is None or report["accounts"]["billed"] != accounts or invoiced != accounts:
            problem = f"run {RUN_ID}: {report}"
    if problem:
        raise SystemExit(f"the rebuilt {name} read model is wrong: {problem}")


# History ------------------------------------------------------------------------------


def export_history(billing: Billing, profile: Path | None) -> dict[str, Any]:
    """`billrun history --run RUN_ID --jsonl > /dev/null`, minus the CLI's start-up."""
    reader = History(billing)
    exported = written = 0
    gc.collect()
    cpu_before = cpu_seconds()
    with (
        open(os.devnull, "w", encoding="utf-8") as out,
        profiled(profile, "history"),
        stopwatch() as elapsed,
    ):
        write = out.write
        for entry in reader.of_run(RUN_ID):
            written += write(json.dumps(entry.as_json(), separators=(",", ":")) + "\n")
            exported += 1
    own = billing.queries.events_with_ids([run_uuid(RUN_ID)])
    return {
        "events": exported,
        "events_read": own[-1][0] - own[0][0] + 1,
        "characters": written,
        "seconds": round(elapsed[0], 3),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 3),
        "events_per_s": rate(exported, elapsed[0]),
    }


# The benchmark ------------------------------------------------------------------------


def bench(accounts: int, batch_size: int, page_size: int, profile: Path | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "accounts": accounts,
        "page_size": page_size,
        "profiled": profile is not None,
    }
    load_before = load_average()
    revision = source_revision()
    with (
        postgres_server() as server,
        throwaway_database(server.url, "billrun_bench_projections") as url,
    ):
        env = eventsourcing_environment(url)
        billing = Billing(env)
        read_side = ReadSide(billing, env)
        try:
            with stopwatch() as setup:
                fixture = billed_log(billing, accounts, batch_size)
                settle(url, [billing.queries.table_name])
            log(f"reading the log ({fixture.head:,} events) in pages of {page_size:,}")
            read_log(billing, page_size, decode=False)  # not timed: every timed read finds
            gc.collect()  # the log as warm as the one before it
            ceiling = read_log(billing, page_size)
            rebuilds: dict[str, dict[str, Any]] = {}
            for name, model in READ_MODELS.items():
                if not model.rebuildable:
                    continue
                log(f"rebuilding {name}")
                rebuilds[name] = time_rebuild(read_side, name, page_size, profile)
                check_view(read_side, name, accounts)
                log(f"  {rebuilds[name]['events']:,} events in {rebuilds[name]['seconds']:.1f}s")
            log(f"exporting the history of run {RUN_ID}")
            history = export_history(billing, profile)
            result.update(_figures(fixture.head, ceiling, rebuilds, history))
            result.update(
                run_events=fixture.run_events,
                import_events=fixture.import_events,
                setup_seconds=round(setup[0], 3),
                read=ceiling,
                rebuilds=rebuilds,
                history=history,
                peak_rss_mb=round(peak_rss_mb(), 1),
                postgres={"source": server.source, **postgres_info(url)},
            )
        finally:
            read_side.close()
            billing.close()
    result["source"] = revision
    result["machine"] = {
        **machine_info(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    return result


def _figures(
    head: int,
    ceiling: dict[str, Any],
    rebuilds: dict[str, dict[str, Any]],
    history: dict[str, Any],
) -> dict[str, Any]:
    events = sum(r["events"] for r in rebuilds.values())
    seconds = sum(r["seconds"] for r in rebuilds.values())
    rebuild_rate = rate(events, seconds)
    read_ceiling = ceiling["read_and_map_events_per_s"]
    read_raw = ceiling["read_events_per_s"]
    return {
        "events": head,
        "rebuild_events": events,
        "rebuild_seconds": round(seconds, 3),
        "rebuild_events_per_s": rebuild_rate,
        "rebuild_rates": {name: r["events_per_s"] for name, r in rebuilds.items()},
        "read_ceiling_events_per_s": read_ceiling,
        "read_raw_events_per_s": read_raw,
        "ratio": round(rebuild_rate / read_ceiling, 3),
        "history_events": history["events"],
        "history_events_per_s": history["events_per_s"],
        "history_ratio": round(history["events_per_s"] / read_raw, 3),
    }


# Output -------------------------------------------------------------------------------


def human(r: dict[str, Any]) -> str:
    m, pg, c, h = r["machine"], r["postgres"], r["read"], r["history"]
    verdict = r["rebuild_events_per_s"] >= TARGET_EVENTS_PER_S
    lines = [
        f"projections over a {r['accounts']:,}-account bill run: {r['events']:,} events in the "
        f"log ({r['import_events']:,} from the import, {r['run_events']:,} from the run), "
        f"pages of {r['page_size']:,}",
        f"read ceiling (select_notifications over the whole log, {c['pages']} pages):",
        f"  reading alone     {c['read_events_per_s']:>10,.0f} events/s  "
        f"({c['read_seconds']:.2f} s)",
        f"  reading + mapping {c['read_and_map_events_per_s']:>10,.0f} events/s  "
        f"({c['read_seconds'] + c['map_seconds']:.2f} s)",
        "rebuilds (events = notifications each rebuild read; other = creating the tables, "
        "switching, dropping the old ones):",
    ]
    for name, b in r["rebuilds"].items():
        lines.append(
            f"  {name:<17} {b['events_per_s']:>10,.0f} events/s  ({b['events']:,} events of "
            f"{b['positions']:,} positions, {b['seconds']:.2f} s, {b['cpu_seconds']:.2f} s CPU)"
        )
        lines.append(
            f"  {'':<17} {'':>10}           reading {b['read_seconds']:.2f} s + mapping "
            f"{b['map_seconds']:.2f} s (alone {b['read_and_map_events_per_s']:,.0f} events/s), "
            f"write() {b['write_seconds']:.2f} s, tracking and commits "
            f"{b['tracking_seconds']:.2f} s, other {b['other_seconds']:.2f} s"
        )
    lines += [
        f"  {'all':<17} {r['rebuild_events_per_s']:>10,.0f} events/s  "
        f"({r['rebuild_events']:,} events, {r['rebuild_seconds']:.2f} s)",
        f"ratio (rebuild / reading + mapping): {r['ratio']:.2f}",
        f"history --run --jsonl to /dev/null: {h['events_per_s']:>10,.0f} events/s  "
        f"({h['events']:,} events, {h['characters'] / 1e6:,.0f} MB of JSON lines, "
        f"{h['seconds']:.2f} s)",
        f"history ratio (export / reading alone): {r['history_ratio']:.2f}",
        f"setup (not timed): {r['setup_seconds']:.1f} s; peak RSS {r['peak_rss_mb']:,.0f} MB",
        f"PostgreSQL {pg['version']} ({pg['source']}, shared_buffers {pg['shared_buffers']}, "
        f"synchronous_commit {pg['synchronous_commit']}, fsync {pg['fsync']})",
        f"machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"load average {m['load_average_before']} before / {m['load_average_after']} after",
        f"source: commit {r['source']['commit']}, "
        f"{r['source']['modified_files']} tracked files modified",
        f"target: rebuild >= {TARGET_EVENTS_PER_S:,} events/s {'ok' if verdict else 'MISSED'}",
    ]
    if r["profiled"]:
        lines.append("(profiled with cProfile: the timings include its overhead)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="default: 100000")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="accounts per run transaction (setup)"
    )
    parser.add_argument(
        "--page-size", type=int, default=5000, help="notifications per page (rebuild's default)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write a cProfile of each rebuild and of the export into DIR",
    )
    args = parser.parse_args(argv)
    if min(args.accounts, args.batch_size, args.page_size) < 1:
        parser.error("--accounts, --batch-size and --page-size must be at least 1")
    result = bench(args.accounts, args.batch_size, args.page_size, args.profile)
    print(json.dumps(result, indent=2) if args.json else human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
