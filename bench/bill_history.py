"""Bill-run cost against the accounts' history: the same N accounts billed month
after month, to show whether a run costs more as their past runs pile up.

    python bench/bill_history.py                          # 10,000 accounts x 24 months
    python bench/bill_history.py --accounts 2000 --months 6 --json
    python bench/bill_history.py --snapshot-interval 0    # without snapshots, to compare

Setup (not timed): a throwaway database and N accounts imported as
bench/bill_run.py imports them (a monthly package, a usage record and a
one-off charge each). Then, for each month from April 2026: import that month's
usage record and charge for every account (not timed; the first month's come
with the accounts), schedule a run over the month, and execute it (timed). Every
run bills every account three lines onto one invoice, so every run writes the
same events: a run that costs more than the first one pays for the history.

The ceiling is the first run, measured in the same process: each run's
accounts/s is printed with its ratio to the first run's, and so is the number
of stored rows a batch reads to load one account (its snapshot and the events
after it, or its whole history without snapshots). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from application.billing.importing import import_accounts
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.snapshots import SNAPSHOT_INTERVAL
from bench.common import (
    RssSampler,
    cpu_seconds,
    current_rss_mb,
    load_average,
    log,
    machine_info,
    postgres_info,
    postgres_server,
    settle,
    source_revision,
    stopwatch,
    throwaway_database,
)
from bench.fixtures import PERIOD, import_document
from domain.runs.settings import Selection
from domain.shared.ids import account_uuid
from domain.shared.periods import Period, add_months
from infrastructure.persistence import eventsourcing_environment

IMPORT_FILE = 2000
"""Accounts per imported file: one transaction of about 8,000 events."""
NEVER = 10**12
"""A snapshot interval no account reaches: no snapshots."""


def month(index: int) -> Period:
    """The `index`-th month from the bench's April 2026."""
    start = add_months(PERIOD.start, index)
    return Period(start, add_months(PERIOD.start, index + 1) - timedelta(days=1))


def import_month(billing: Billing, accounts: int, index: int) -> float:
    """Import every account's usage record and charge of month `index` (the first
    month: the accounts themselves); returns the seconds it took."""
    with stopwatch() as importing:
        for first in range(1, accounts + 1, IMPORT_FILE):
            size = min(IMPORT_FILE, accounts + 1 - first)
            document = import_document(size, True, first, month(index).start)
            import_accounts(billing, document, "bench")
    return importing[0]


def rows_per_load(billing: Billing, accounts: int, sample: int = 200) -> float:
    """Stored rows (snapshot and events) a batch reads to load one account, on
    average over a sample of the accounts."""
    step = max(1, accounts // sample)
    ids = [account_uuid(f"BENCH-{i:07d}") for i in range(1, accounts + 1, step)]
    loaded = billing.queries.events_of_many(ids, with_snapshots=True)
    return sum(len(rows) for rows in loaded.values()) / len(ids)


def bill_month(
    billing: Billing, url: str, index: int, accounts: int, batch_size: int
) -> dict[str, Any]:
    run_id = f"history-{index:02d}"
    schedule_run(billing, run_id, month(index), None, Selection())
    settle(url, [billing.queries.table_name])
    gc.collect()
    rows = rows_per_load(billing, accounts)
    cpu_before = cpu_seconds()
    with RssSampler() as rss, stopwatch() as timed:
        execution = BillRunExecutor(billing, batch_size).execute(run_id)
    stats = execution.run.statistics
    if not (stats.accounts_billed == stats.invoices == stats.lines // 3 == accounts):
        raise SystemExit(f"run {run_id} did not bill every account once: {stats}")
    return {
        "run": run_id,
        "seconds": round(timed[0], 3),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 3),
        "accounts_per_s": round(accounts / timed[0], 1),
        "rows_per_account_load": round(rows, 1),
        "rss_peak_mb": round(rss.peak_mb, 1),
        "load_average": load_average(),
    }


class HeldMemory:
    """With `--tracemalloc`: the Python memory still held after each month (import
    and run, then a full collection), and the allocation sites that grew most
    since the month before: what a process billing month after month keeps."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last: tracemalloc.Snapshot | None = None
        if enabled:
            tracemalloc.start(1)

    def after_month(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        held = sum(stat.size for stat in snapshot.statistics("filename"))
        grown: list[str] = []
        if self.last is not None:
            diff = snapshot.compare_to(self.last, "lineno")
            grown = [f"{d.traceback[0]}: {d.size_diff / 1024:+,.0f} KiB" for d in diff[:6]]
        self.last = snapshot
        rss = current_rss_mb()
        # What the C allocator keeps of freed memory (the month's peak: an import
        # file, a batch) rather than what anything still holds: given back here.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return {
            "python_held_mb": round(held / 2**20, 1),
            "grew_most": grown,
            "rss_mb": round(rss, 1),
            "rss_after_malloc_trim_mb": round(current_rss_mb(), 1),
        }


def bench(
    accounts: int, months: int, batch_size: int, interval: int, trace: bool = False
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "accounts": accounts,
        "months": months,
        "batch_size": batch_size,
        "snapshot_interval": interval or None,
    }
    revision = source_revision()
    with postgres_server() as server, throwaway_database(server.url) as url:
        billing = Billing(eventsourcing_environment(url), snapshot_interval=interval or NEVER)
        try:
            runs: list[dict[str, Any]] = []
            imports: list[float] = []
            held = HeldMemory(trace)
            for index in range(months):
                imports.append(round(import_month(billing, accounts, index), 3))
                runs.append(bill_month(billing, url, index, accounts, batch_size))
                runs[-1].update(held.after_month())
                runs[-1]["ratio_to_first"] = round(
                    runs[-1]["accounts_per_s"] / runs[0]["accounts_per_s"], 3
                )
                log(f"month {index + 1}/{months}: {runs[-1]}")
            result.update(
                runs=runs,
                import_seconds=imports,
                first_accounts_per_s=runs[0]["accounts_per_s"],
                last_accounts_per_s=runs[-1]["accounts_per_s"],
                last_three_to_first_three=_ends_ratio(runs),
                postgres={"source": server.source, **postgres_info(url)},
            )
        finally:
            billing.close()
    result["source"] = revision
    result["machine"] = machine_info()
    return result


def _ends_ratio(runs: list[dict[str, Any]]) -> float:
    """Mean accounts/s of the last three runs over the first three's (CPU seconds,
    not wall: the machine is shared, and a busy minute is not history)."""
    ends = min(3, len(runs))
    first = sum(r["cpu_seconds"] for r in runs[:ends])
    last = sum(r["cpu_seconds"] for r in runs[-ends:])
    return round(first / last, 3)


def human(r: dict[str, Any]) -> str:
    lines = [
        f"bill history: {r['accounts']:,} accounts x {r['months']} monthly runs, batches of "
        f"{r['batch_size']}, snapshot every {r['snapshot_interval'] or 'never'} events",
        f"{'run':<12} {'s':>7} {'CPU s':>7} {'acc/s':>8} {'x first':>8} {'rows/load':>10}"
        f" {'RSS MB':>7} {'load':>5}",
    ]
    for run in r["runs"]:
        lines.append(
            f"{run['run']:<12} {run['seconds']:>7.2f} {run['cpu_seconds']:>7.2f}"
            f" {run['accounts_per_s']:>8,.0f} {run['ratio_to_first']:>8.2f}"
            f" {run['rows_per_account_load']:>10.1f} {run['rss_peak_mb']:>7.0f}"
            f" {run['load_average']:>5.1f}"
        )
    lines.append(
        "CPU per run, first three / last three: "
        f"{r['last_three_to_first_three']:.2f} (1.00: no growth with history)"
    )
    m = r["machine"]
    lines.append(f"machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}")
    lines.append(f"source: commit {r['source']['commit']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000, help="default: 10000")
    parser.add_argument("--months", type=int, default=24, help="monthly runs (default: 24)")
    parser.add_argument("--batch-size", type=int, default=500, help="default: 500")
    parser.add_argument(
        "--snapshot-interval",
        type=int,
        default=SNAPSHOT_INTERVAL,
        help=f"events between account snapshots, 0: none (default: {SNAPSHOT_INTERVAL})",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="after each month, the Python memory still held and where it grew (slow)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.accounts < 1 or args.months < 1 or args.batch_size < 1 or args.snapshot_interval < 0:
        parser.error("--accounts, --months and --batch-size must be at least 1")
    result = bench(
        args.accounts, args.months, args.batch_size, args.snapshot_interval, args.tracemalloc
    )
    print(json.dumps(result, indent=2) if args.json else human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
