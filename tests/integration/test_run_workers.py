"""One run, many workers: three `billrun worker --batches-only` processes bill one run
together over a NATS work queue, one of them is killed with `kill -9` while it holds
a batch, and the run ends exactly as a single process makes it: the same invoices,
numbers, totals, billings and statistics, nothing billed twice, and the dead
worker's batch handed to another."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from application.runs.executor import BillRunExecutor
from infrastructure.messaging import StreamNames
from infrastructure.run_queue import RunQueueNames, delete_run_queue
from tests.conftest import SteppingClock
from tests.integration.helpers import (
    BILLRUN,
    REPO_ROOT,
    EventLog,
    assert_billed_at_most_once,
    billing_on,
    cli_env,
    fresh_database,
    outcome,
    wait_until,
)
from tests.integration.test_crash import BATCH_SIZE, BATCHES, RUN, prepare

ACK_WAIT_S = 3
TAKEN = re.compile(r"run (\S+): took the batch after (\d+) \(delivery (\d+)\)")


@pytest.fixture(scope="module")
def single_process(postgres_server: str) -> Iterator[dict]:
    """The same run executed by one process, start to finish, in its own database."""
    with fresh_database(postgres_server) as url:
        with billing_on(url, clock=SteppingClock()) as billing:
            prepare(billing)
            BillRunExecutor(billing, BATCH_SIZE).execute(RUN)
        yield outcome(url, RUN)


class Process:
    """A `billrun` subprocess whose stderr is read line by line as it comes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.popen = subprocess.Popen(
            [str(BILLRUN), *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append(line)

    def taken(self) -> list[tuple[int, int]]:
        """The batches this worker took: (after, delivery)."""
        found = (TAKEN.search(line) for line in list(self.lines))
        return [(int(m.group(2)), int(m.group(3))) for m in found if m]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@pytest.fixture
def prefix(nats_server: str) -> Iterator[str]:
    """A BILLRUN_NATS_PREFIX of the test's own; its run queue is deleted afterwards."""
    tag = f"test-{secrets.token_hex(4)}"
    yield tag
    names = RunQueueNames.of(StreamNames.for_prefix(tag, "test"))
    asyncio.run(delete_run_queue(nats_server, names))


def test_three_workers_one_killed_mid_batch_bill_the_run_as_one_process_does(
    database_url: str, nats_server: str, prefix: str, tmp_path: Path, single_process: dict
) -> None:
    with billing_on(database_url) as billing:
        prepare(billing)
    env = cli_env(database_url, BATCH_SIZE)
    env.update(
        BILLRUN_NATS_URL=nats_server,
        BILLRUN_NATS_PREFIX=prefix,
        BILLRUN_BATCH_ACK_WAIT=str(ACK_WAIT_S),
        BILLRUN_HOME=str(tmp_path / "home"),
    )
    workers = [Process(env, "worker", "--batches-only", "-v") for _ in range(3)]
    coordinator: Process | None = None
    try:
        wait_until(
            lambda: all(any("billing run batches" in line for line in w.lines) for w in workers),
            timeout=60,
            what="the workers to start",
        )
        coordinator = Process(env, "run", "execute", RUN, "--json", "--workers")
        victim = workers[0]
        # Killed while it holds its third batch: preparing it, or waiting its turn.
        wait_until(lambda: len(victim.taken()) >= 3, timeout=60, what="the victim's 3rd batch")
        victim.popen.send_signal(signal.SIGKILL)
        held_after = victim.taken()[-1][0]

        stdout, stderr = coordinator.popen.communicate(timeout=180)
        assert coordinator.popen.returncode == 0, stderr
        report = json.loads(stdout)
        assert report["status"] == "completed"

        # The dead worker's batch went to another worker (billed there, or found
        # billed by a worker that would not wait for it).
        survivors = workers[1:]
        wait_until(
            lambda: any((held_after, d) in w.taken() for w in survivors for d in range(2, 11)),
            timeout=ACK_WAIT_S * 10,
            what=f"the batch after {held_after} to be redelivered",
        )
        assert all(len(w.taken()) >= 1 for w in survivors), "every live worker took batches"
    finally:
        for process in [*workers, *([coordinator] if coordinator else [])]:
            process.stop()

    assert outcome(database_url, RUN) == single_process
    with EventLog(database_url) as log:
        numbers = log.closed_numbers()
        assert numbers == list(range(1, len(numbers) + 1))
        assert log.batches_committed() == BATCHES
        assert_billed_at_most_once(log)
