"""`billrun worker --batches-only` processes for the bill-run bench's `--workers N`:
started on the bench's throwaway database and a run queue of their own (a unique
BILLRUN_NATS_PREFIX), stopped and the queue deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from application.runs.dispatch import BatchDispatch
from application.shared.app import Billing
from infrastructure.messaging import StreamNames
from infrastructure.run_queue import BatchOrder, RunQueueNames, delete_run_queue, publish_orders

BILLRUN = Path(sys.executable).with_name("billrun")
ACK_WAIT_S = 30


@dataclass
class Workers:
    processes: list[subprocess.Popen[str]]
    dispatch: BatchDispatch

    def cpu_seconds(self) -> float:
        """User + system CPU of the worker processes so far (Linux /proc)."""
        total = 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        for process in self.processes:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
        return total


@contextlib.contextmanager
def nats_for_bench(url: str | None) -> Iterator[str]:
    """`url`, or BILLRUN_NATS_URL / BILLRUN_TEST_NATS_URL, or an embedded server."""
    url = url or os.environ.get("BILLRUN_NATS_URL") or os.environ.get("BILLRUN_TEST_NATS_URL")
    if url:
        yield url
        return
    from infrastructure.embedded import embedded_nats

    with (
        tempfile.TemporaryDirectory(prefix="billrun-bench-nats-") as home,
        embedded_nats(Path(home)) as embedded,
    ):
        yield embedded


@contextlib.contextmanager
def batch_workers(
    count: int, database_url: str, nats_url: str, billing: Billing
) -> Iterator[Workers]:
    prefix = f"bench-{secrets.token_hex(4)}"
    queue = RunQueueNames.of(StreamNames.for_prefix(prefix, "bench"))
    env = {
        **os.environ,
        "BILLRUN_DATABASE_URL": database_url,
        "BILLRUN_NATS_URL": nats_url,
        "BILLRUN_NATS_PREFIX": prefix,
        "BILLRUN_BATCH_ACK_WAIT": str(ACK_WAIT_S),
    }
    with tempfile.TemporaryDirectory(prefix="billrun-bench-workers-") as home:
        env["BILLRUN_HOME"] = home
        processes = [
            subprocess.Popen(
                [str(BILLRUN), "worker", "--batches-only"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]

        def publish(orders: list[BatchOrder]) -> None:
            asyncio.run(publish_orders(nats_url, queue, orders, ACK_WAIT_S))

        try:
            # The queue and its consumer exist once a worker is up; give them time.
            asyncio.run(publish_orders(nats_url, queue, [], ACK_WAIT_S))
            time.sleep(3)
            for process in processes:
                if process.poll() is not None:
                    raise SystemExit(f"a worker stopped: {process.communicate()[1]}")
            yield Workers(processes, BatchDispatch(billing, publish, patience=ACK_WAIT_S))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            asyncio.run(delete_run_queue(nats_url, queue))
