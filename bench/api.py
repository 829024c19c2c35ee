"""The HTTP API: usage ingestion in batches, and invoice reads at 100,000 invoices.

Usage ingestion (target: at least 5,000 records/s on this 2-core machine):
  set-up (not timed): two tenants of one throwaway database, each with N
  accounts that have a package with a usage rate (bench/fixtures.py);
  ceiling: the same records recorded in-process in tenant `ceiling` through
  `record_usage` (the command POST /v1/usage/batches runs), batch by batch;
  figure: the records POSTed to `billrun serve` (a subprocess, as deployed) in
  batches of 1,000 with an Idempotency-Key each, from `--clients` threads
  (default 3: one server process overlaps one request's database time with
  another's Python);
  ratio = figure / ceiling (1.0: HTTP, JSON and the key cost nothing).

Invoice reads (p50/p99 of GET /v1/invoices?limit=100 and GET /v1/invoices/{id}
with `--invoices` invoices in the tenant): measured only when the server has
those routes (they come with the runs and invoices resources); otherwise the
JSON says `"skipped"` and why.

    python bench/api.py [--accounts 1000] [--records 50000] [--clients 3]
                        [--invoices 100000] [--reads 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from psycopg.sql import SQL

from application.billing.importing import import_accounts
from application.billing.transactions import UsageInput, record_usage
from bench.common import (
    load_average,
    log,
    machine_info,
    postgres_server,
    source_revision,
    stopwatch,
    throwaway_database,
)
from bench.fixtures import billed_log, import_document
from entrypoints.http.pagination import encode_cursor
from entrypoints.runtime import open_runtime
from infrastructure.settings import Settings
from infrastructure.tenancy import ControlStore, Role
from projections.invoice_pages import InvoiceQuery, invoice_page

BILLRUN = str(Path(sys.executable).with_name("billrun"))
TARGET_RECORDS_PER_S = 5000
BATCH = 1000


def records(accounts: int, count: int) -> list[dict[str, str]]:
    """`count` usage records spread evenly over the accounts, each account's
    together (as a service sends them: a batch covers a slice of the accounts,
    so two clients rarely write one account at once), in the API's JSON form."""
    per_account = -(-count // accounts)
    return [
        {
            "account_id": f"BENCH-{n // per_account + 1:07d}",
            "usage_id": f"r{n}",
            "package_id": "office",
            "quantity": str(1 + n % 9),
            "occurred_on": "2026-04-12",
        }
        for n in range(count)
    ]


def as_input(record: dict[str, str], where: str) -> UsageInput:
    return UsageInput(
        where=where,
        account_id=record["account_id"],
        usage_id=record["usage_id"],
        package_id=record["package_id"],
        quantity=Decimal(record["quantity"]),
        occurred_on=date.fromisoformat(record["occurred_on"]),
    )


def prepare_tenant(settings: Settings, accounts: int) -> None:
    with open_runtime(settings) as rt:
        import_accounts(rt.billing, import_document(accounts), "bench")


def ceiling(settings: Settings, batches: list[list[dict[str, str]]]) -> float:
    """Seconds to record the batches in-process, one transaction each."""
    with open_runtime(settings) as rt, stopwatch() as elapsed:
        for batch in batches:
            inputs = [as_input(r, f"records[{i}]") for i, r in enumerate(batch)]
            record_usage(rt.billing, inputs, "bench")
    return elapsed[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(url: str, home: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BILLRUN_DATABASE_URL": url, "BILLRUN_HOME": home}
    server = subprocess.Popen(
        [BILLRUN, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("billrun serve did not answer within 60 s")


def post_batches(
    base: str, key: str, batches: list[list[dict[str, str]]], clients: int
) -> tuple[float, int]:
    """Seconds to POST every batch from `clients` threads, and records recorded."""
    recorded = [0] * clients
    failures: list[str] = []

    def client(index: int) -> None:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as http:
            for number in range(index, len(batches), clients):
                answer = http.post(
                    "/v1/usage/batches",
                    json={"records": batches[number]},
                    headers={"Idempotency-Key": f"bench-batch-{number}"},
                )
                if answer.status_code != 201:
                    failures.append(f"batch {number}: {answer.status_code} {answer.text[:300]}")
                    return
                recorded[index] += answer.json()["recorded"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    with stopwatch() as elapsed:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise SystemExit("; ".join(failures))
    return elapsed[0], sum(recorded)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "samples": len(ordered),
    }


def invoice_reads(
    base: str, key: str, settings: Settings, invoices: int, reads: int
) -> dict[str, Any]:
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    if "/v1/invoices" not in paths or "/v1/invoices/{invoice_id}" not in paths:
        return {"skipped": "the server has no /v1/invoices routes yet"}
    log(f"billing {invoices:,} accounts for the invoice reads (not timed)")
    with open_runtime(settings) as rt:
        rt.billing.seller = None  # bills under the demo seller on purpose (no run check)
        billed_log(rt.billing, invoices)
        rt.read_side.fresh_invoices()  # the view catches up here, not inside a timed request
    timings: dict[str, list[float]] = {"list": [], "deep": [], "get": [], "ceiling": []}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
        # The first read catches the server's views up (not timed: 100,000 invoices).
        first = http.get("/v1/invoices", params={"limit": 100}, timeout=900)
        ids = [item["id"] for item in first.json()["items"]]
        deep = deep_cursor(settings, invoices - 100)
        with open_runtime(settings) as rt:
            view = rt.read_side.fresh_invoices()
            for _ in range(reads):  # the ceiling: the same page read in-process
                with stopwatch() as elapsed:
                    invoice_page(view, InvoiceQuery(), None, 100)
                timings["ceiling"].append(elapsed[0])
        for n in range(reads):
            with stopwatch() as elapsed:
                http.get("/v1/invoices", params={"limit": 100}).raise_for_status()
            timings["list"].append(elapsed[0])
            with stopwatch() as elapsed:
                http.get("/v1/invoices", params={"limit": 100, "after": deep}).raise_for_status()
            timings["deep"].append(elapsed[0])
            with stopwatch() as elapsed:
                http.get(f"/v1/invoices/{ids[n % len(ids)]}").raise_for_status()
            timings["get"].append(elapsed[0])
    listed, ceiling = percentiles(timings["list"]), percentiles(timings["ceiling"])
    return {
        "invoices": invoices,
        "list_limit_100": listed,
        "list_limit_100_last_page": percentiles(timings["deep"]),
        "get_one": percentiles(timings["get"]),
        "ceiling_page_in_process": ceiling,
        "ratio_p50": round(ceiling["p50_ms"] / listed["p50_ms"], 2) if listed["p50_ms"] else None,
    }


def deep_cursor(settings: Settings, position: int) -> str:
    """The `next` cursor a client paging from the start would hold at `position`:
    found in-process (walking there over HTTP would take a thousand pages)."""
    with open_runtime(settings) as rt:
        view = rt.read_side.fresh_invoices()
        with view.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT opened_at, id FROM {} ORDER BY opened_at, id OFFSET %s LIMIT 1").format(
                    view.table("invoices")
                ),
                [max(position - 1, 0)],
            )
            row = curs.fetchone()
    assert row is not None
    return encode_cursor(f"{row['opened_at'].isoformat()}|{row['id']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="One JSON object on stdout.")
    options = parser.parse_args()
    load_before = load_average()
    all_records = records(options.accounts, options.records)
    batches = [all_records[i : i + BATCH] for i in range(0, len(all_records), BATCH)]
    home = tempfile.mkdtemp(prefix="billrun-bench-api-")
    with postgres_server() as server, throwaway_database(server.url) as url:
        base_settings = replace(Settings.from_environment({"BILLRUN_HOME": home}), database_url=url)
        with ControlStore(url, max_size=1) as control:
            for tenant in ("ceiling", "http", "reads"):
                control.create_tenant(tenant)
            _, service_key = control.create_key("http", Role.SERVICE, "bench")
            _, reader_key = control.create_key("reads", Role.AUDITOR, "bench")
        log(f"importing {options.accounts:,} accounts into two tenants (not timed)")
        for tenant in ("ceiling", "http"):
            prepare_tenant(base_settings.for_tenant(tenant), options.accounts)
        log(f"ceiling: {len(all_records):,} records in-process in batches of {BATCH}")
        ceiling_s = ceiling(base_settings.for_tenant("ceiling"), batches)
        port = free_port()
        process = start_server(url, home, port)
        try:
            base = f"http://127.0.0.1:{port}"
            log(f"figure: the same records over HTTP from {options.clients} clients")
            http_s, recorded = post_batches(base, service_key, batches, options.clients)
            if recorded != len(all_records):
                raise SystemExit(f"recorded {recorded} of {len(all_records)} records")
            reads = invoice_reads(
                base, reader_key, base_settings.for_tenant("reads"), options.invoices,
                options.reads,
            )  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=30)
    figure = len(all_records) / http_s
    ceiling_rate = len(all_records) / ceiling_s
    result = {
        "benchmark": "api",
        "usage_ingestion": {
            "records": len(all_records),
            "batch": BATCH,
            "clients": options.clients,
            "accounts": options.accounts,
            "records_per_s": round(figure),
            "ceiling_records_per_s": round(ceiling_rate),
            "ratio": round(figure / ceiling_rate, 2),
            "target_records_per_s": TARGET_RECORDS_PER_S,
            "met": figure >= TARGET_RECORDS_PER_S,
        },
        "invoice_reads": reads,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "database": server.source,
        "source": source_revision(),
        "machine": machine_info(),
    }
    if options.json:
        print(json.dumps(result, indent=2))
        return
    usage = result["usage_ingestion"]
    print(
        f"usage over HTTP: {usage['records_per_s']:,} records/s beside "
        f"{usage['ceiling_records_per_s']:,} in-process (ratio {usage['ratio']}); "
        f"target {TARGET_RECORDS_PER_S:,}: {'met' if usage['met'] else 'NOT met'}"
    )
    print(f"invoice reads: {json.dumps(reads)}")


if __name__ == "__main__":
    main()
