"""Write-lock bench: do more writers write more? The event store's ceiling.

N processes (1, 2 and 4 by default) each save their share of the same number of
library events (the bill-run bench's ceiling: the bare eventsourcing recorder, its
transactions of `--per-transaction` events) into one events table at once. The
figure is the events per second of all writers together against one writer's in
the same run (the ratio); while they write, pg_locks is sampled every 50 ms for
writers waiting on the table's lock (the recorder's `LOCK TABLE ... IN EXCLUSIVE
MODE`, which keeps notification ids committed in order). docs/scaling.md reads
the result: the ceiling of one event store is one writer's rate, whoever writes.

    .venv/bin/python bench/write_lock.py [--events 40000] [--writers 1 2 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench.bill_run import Ceiling, library_environment, measure_ceiling
from bench.common import load_average, log, postgres_server, throwaway_database

STATE_BYTES = 560
"""About a bill run's mean stored event (docs/benchmarks.md)."""


def _write(url: str, events: int, per_transaction: int) -> None:
    measure_ceiling(url, events, per_transaction, STATE_BYTES)


class LockSampler:
    """Counts, every `interval` seconds, the writers waiting on a relation lock."""

    def __init__(self, url: str, interval: float = 0.05) -> None:
        self.url = url
        self.interval = interval
        self.samples = self.waiting_samples = self.waiting_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation' AND "
                    "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ).fetchone()
                waiting = int(row[0]) if row else 0
                self.samples += 1
                self.waiting_samples += waiting > 0
                self.waiting_total += waiting
                time.sleep(self.interval)


def measure(url: str, writers: int, events: int, per_transaction: int) -> dict[str, Any]:
    share = events // writers
    context = multiprocessing.get_context("spawn")  # each writer its own connections
    processes = [
        context.Process(target=_write, args=(url, share, per_transaction)) for _ in range(writers)
    ]
    with LockSampler(url) as locks:
        started = time.monotonic()
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        seconds = time.monotonic() - started
    if any(p.exitcode for p in processes):
        raise SystemExit(f"a writer failed ({[p.exitcode for p in processes]})")
    return {
        "writers": writers,
        "events": share * writers,
        "seconds": round(seconds, 3),
        "events_per_s": round(share * writers / seconds, 1),
        "lock_samples": locks.samples,
        "share_of_samples_with_a_writer_waiting": round(
            locks.waiting_samples / max(locks.samples, 1), 3
        ),
        "mean_writers_waiting": round(locks.waiting_total / max(locks.samples, 1), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000, help="per configuration")
    parser.add_argument("--per-transaction", type=int, default=5_000)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"load_average_before": load_average(), "runs": []}
    with postgres_server() as server, throwaway_database(server.url) as url:
        Ceiling(library_environment(url)).close()  # the table, made once
        for writers in args.writers:
            log(f"{writers} writers, {args.events:,} events in all")
            result["runs"].append(measure(url, writers, args.events, args.per_transaction))
    single = result["runs"][0]["events_per_s"]
    for run in result["runs"]:
        run["ratio_to_first"] = round(run["events_per_s"] / single, 3)
    result["load_average_after"] = load_average()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for run in result["runs"]:
        print(
            f"{run['writers']} writers: {run['events_per_s']:>9,.0f} events/s "
            f"(x{run['ratio_to_first']:.2f} of {result['runs'][0]['writers']}), a writer "
            f"waiting on the table lock in {run['share_of_samples_with_a_writer_waiting']:.0%} "
            f"of {run['lock_samples']} samples"
        )
    print(f"load average {result['load_average_before']} before, {result['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
