"""Read commands at the size a new user reaches: `billrun invoice list --json`,
`billrun ar aging` and `billrun audit verify` over ~4,900 invoices.

Set-up (not timed): a throwaway database with N accounts billed by one run
(bench/fixtures.py: N invoices, each posted to receivables), then each command
run once so that the read models have caught up and the audit seal covers the
log. Timed: each command started as a user starts it (a subprocess, stdout to a
pipe), `--runs` times, median wall time; beside it two ceilings measured in the
same run: `billrun --help` (starting the CLI at all) and the bare queries
(psycopg reading the rows each command needs, in this process). Target: each
command under 1 s at 4,900 invoices.

    python bench/cli_reads.py [--accounts 4900] [--runs 5] [--json] [--keep-database]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from application.shared.app import Billing
from bench.common import (
    load_average,
    log,
    machine_info,
    postgres_server,
    source_revision,
    throwaway_database,
)
from bench.fixtures import billed_log
from infrastructure.persistence import eventsourcing_environment

BILLRUN = str(Path(sys.executable).with_name("billrun"))
TARGET_S = 1.0
COMMANDS = {
    "invoice list --json": ["invoice", "list", "--json"],
    "ar aging": ["ar", "aging"],
    "ar aging --json": ["ar", "aging", "--json"],
    "audit verify": ["audit", "verify"],
    "invoice list (table)": ["invoice", "list"],
}
CEILING = "billrun --help"


def start(args: list[str], url: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the child) of one start."""
    env = {**os.environ, "BILLRUN_DATABASE_URL": url, "COLUMNS": "120"}
    # As a user's Python does: each billrun module compiled once, then cached in
    # __pycache__ (this sandbox sets the variable; startup.py drops it too).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    result = subprocess.run([BILLRUN, *args], env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"billrun {' '.join(args)} failed:\n{result.stderr.decode()}")
    return elapsed, usage.ru_utime + usage.ru_stime - cpu_before


def bare_queries(url: str) -> float:
    """Reading every row the commands read, as plain psycopg does: every stored
    event (what audit verify hashes) and every row of the read-model tables."""
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) "
                "FROM information_schema.tables WHERE table_schema NOT IN "
                "('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
            )
        ]
        for table in tables:
            conn.execute(f"SELECT * FROM {table}").fetchall()  # names from the catalog
    return time.perf_counter() - started


def bench(accounts: int, runs: int, keep: bool) -> dict[str, Any]:
    with postgres_server() as server, throwaway_database(server.url, "billrun_reads") as url:
        billing = Billing(eventsourcing_environment(url))
        try:
            billed = billed_log(billing, accounts)
        finally:
            billing.close()
        log("catching the read models and the audit seal up (not timed)")
        for args in COMMANDS.values():
            start(args, url)
        load_before = load_average()
        samples: dict[str, list[float]] = {name: [] for name in [CEILING, *COMMANDS, "bare"]}
        # CPU seconds (user + system) of each start: far steadier than wall time on
        # a loaded machine.
        cpu: dict[str, list[float]] = {name: [] for name in [CEILING, *COMMANDS]}
        for _ in range(runs):
            for name, args in [(CEILING, ["--help"]), *COMMANDS.items()]:
                wall, seconds = start(args, url)
                samples[name].append(wall)
                cpu[name].append(seconds)
            samples["bare"].append(bare_queries(url))
        medians = {name: round(statistics.median(v), 3) for name, v in samples.items()}
        if keep:
            log(f"kept the database: {url}")
            input("press Enter to drop it")
    return {
        "benchmark": "cli_reads",
        "accounts": accounts,
        "invoices": accounts,
        "events": billed.head,
        "runs": runs,
        "median_s": medians,
        "target_s": TARGET_S,
        "met": {name: medians[name] < TARGET_S for name in COMMANDS},
        "median_cpu_s": {name: round(statistics.median(v), 3) for name, v in cpu.items()},
        "ceiling_start_s": medians[CEILING],
        "ceiling_bare_queries_s": medians["bare"],
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "source": source_revision(),
        "machine": machine_info(),
    }


def human(r: dict[str, Any]) -> str:
    lines = [
        f"{r['invoices']:,} invoices ({r['events']:,} events), median of {r['runs']} starts; "
        f"ceilings: billrun --help {r['ceiling_start_s']:.3f} s (CPU "
        f"{r['median_cpu_s'][CEILING]:.3f} s), bare queries "
        f"{r['ceiling_bare_queries_s']:.3f} s"
    ]
    for name in COMMANDS:
        met = "met" if r["met"][name] else "NOT met"
        lines.append(
            f"  {r['median_s'][name]:6.3f} s (CPU {r['median_cpu_s'][name]:.3f} s)  {name}  "
            f"(target {r['target_s']} s: {met})"
        )
    lines.append(
        f"load average {r['load_average_before']} before, {r['load_average_after']} after "
        f"({r['machine']['cores']} cores)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=4900, help="default: 4900")
    parser.add_argument("--runs", type=int, default=5, help="starts per command (default: 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--keep-database", action="store_true", help="wait before dropping the database"
    )
    args = parser.parse_args(argv)
    if min(args.accounts, args.runs) < 1:
        parser.error("--accounts and --runs must be at least 1")
    result = bench(args.accounts, args.runs, args.keep_database)
    print(json.dumps(result, indent=2) if args.json else human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
