"""The coordinator (`BatchDispatch`) and the worker (`BatchWorker`) of a shared run, on
their own: orders handed to workers in any order commit in the run's order, a
batch whose predecessor never commits is billed by whoever waits on it, a batch
committed twice is dropped the second time, a coordinator with no worker bills
the run itself, a manager told to stop stops following at once; and on the
NATS work queue, a batch handed back is delivered again, while one held by a
slow worker is not given to another as long as it says it is still at work.

Each worker and the coordinator has a `Billing` of its own (as separate processes
would); the orders go through a list here (the queue only carries them), except
in the tests of the queue itself, which use the real NATS server.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from application.runs.batch_worker import BatchWorker
from application.runs.dispatch import BatchDispatch
from application.runs.executor import BillRunExecutor, Execution
from application.runs.scheduler import Managed, Manager
from application.runs.scheduling import schedule_run
from domain.runs.settings import Selection
from infrastructure.messaging import StreamNames
from infrastructure.run_queue import (
    BatchHandler,
    BatchOrder,
    RunQueueNames,
    delete_run_queue,
    publish_orders,
    work_batches,
)
from tests.conftest import SteppingClock
from tests.integration.helpers import (
    EventLog,
    assert_billed_at_most_once,
    billing_on,
    fresh_database,
    import_with_usage_and_charges,
    outcome,
    varied_accounts,
    wait_until,
)
from tests.integration.test_crash import Q1, RUN

SIZE = 4
ACCOUNTS = varied_accounts(12)
BATCHES = 3
NEVER = 600.0
"""A patience no test reaches: the behaviour under test must not be the fallback."""


def prepare(url: str) -> None:
    with billing_on(url) as billing:
        import_with_usage_and_charges(billing, *ACCOUNTS)
        schedule_run(billing, RUN, Q1, None, Selection())


@pytest.fixture(scope="module")
def single_process(postgres_server: str) -> Iterator[dict]:
    with fresh_database(postgres_server) as url:
        prepare(url)
        with billing_on(url, clock=SteppingClock()) as billing:
            BillRunExecutor(billing, SIZE).execute(RUN)
        yield outcome(url, RUN)


@dataclass
class Coordinator:
    """`run execute --workers` in a thread, its orders collected in `orders`."""

    url: str
    patience: float
    orders: list[BatchOrder] = field(default_factory=list)
    execution: Execution | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._execute, daemon=True)
        self.thread.start()

    def _execute(self) -> None:
        try:
            with billing_on(self.url) as billing:
                dispatch = BatchDispatch(billing, self.orders.extend, self.patience)
                self.execution = BillRunExecutor(billing, SIZE, dispatch=dispatch).execute(RUN)
        except BaseException as error:  # reported by `finished`
            self.error = error

    def handed_out(self) -> list[BatchOrder]:
        wait_until(lambda: self.orders or self.error, timeout=60, what="the batch orders")
        assert self.error is None, self.error
        return list(self.orders)

    def finished(self, timeout: float = 60) -> Execution:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the coordinator is still following"
        assert self.error is None, self.error
        assert self.execution is not None
        return self.execution


def handle(url: str, order: BatchOrder, patience: float = NEVER) -> str:
    """One worker (a `Billing` of its own) executing one order."""
    with billing_on(url) as billing:
        return BatchWorker(billing, patience, poll=0.01).handle(order)


def handle_all(url: str, orders: list[BatchOrder], patience: float = NEVER) -> list[str]:
    """One thread per order, all at once; what became of each, in the orders' order."""
    results: list[str] = [""] * len(orders)

    def one(i: int) -> None:
        results[i] = handle(url, orders[i], patience)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(orders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def assert_as_one_process(url: str, single_process: dict) -> None:
    assert outcome(url, RUN) == single_process
    with EventLog(url) as log:
        numbers = log.closed_numbers()
        assert numbers == list(range(1, len(numbers) + 1))
        assert log.batches_committed() == BATCHES
        assert_billed_at_most_once(log)


def test_the_orders_cover_the_run_in_batches_from_its_cursor(database_url: str) -> None:
    prepare(database_url)
    coordinator = Coordinator(database_url, NEVER)
    orders = coordinator.handed_out()
    assert [o.after for o in orders[1:]] == [o.end for o in orders[:-1]]
    assert len(orders) == BATCHES
    assert {o.size for o in orders} == {SIZE}
    assert len({o.message_id for o in orders}) == BATCHES
    handle_all(database_url, orders)
    coordinator.finished()


def test_orders_taken_in_reverse_commit_in_the_runs_order(
    database_url: str, single_process: dict
) -> None:
    prepare(database_url)
    coordinator = Coordinator(database_url, NEVER)
    orders = coordinator.handed_out()
    # The last batch's worker starts first; each waits for its predecessor's commit.
    results = handle_all(database_url, list(reversed(orders)))
    assert sorted(results) == [f"committed as batch {n}" for n in range(1, BATCHES + 1)]
    assert results[-1] == "committed as batch 1"
    execution = coordinator.finished()
    assert execution.batches_committed == 0  # the workers billed every batch
    assert_as_one_process(database_url, single_process)


def test_a_batch_whose_predecessor_never_commits_is_billed_by_its_successor(
    database_url: str, single_process: dict
) -> None:
    prepare(database_url)
    coordinator = Coordinator(database_url, NEVER)
    first, second, third = coordinator.handed_out()
    # Nobody takes the first batch (its worker died and the redelivery has not come).
    assert handle(database_url, second, patience=0.3) == (
        "committed as batch 2 (after billing 1 stalled batches)"
    )
    assert handle(database_url, first) == "already billed"  # the redelivery, late
    assert handle(database_url, third) == "committed as batch 3"
    coordinator.finished()
    assert_as_one_process(database_url, single_process)


def test_a_batch_committed_twice_is_dropped_the_second_time(
    database_url: str, single_process: dict
) -> None:
    prepare(database_url)
    coordinator = Coordinator(database_url, NEVER)
    first, second, third = coordinator.handed_out()
    # Two workers holding the same order at once (a redelivery to a second worker
    # while the first, thought dead, was only slow): one commits, one drops.
    dropped = {"already billed", "billed by another executor"}
    firsts = handle_all(database_url, [first, first])
    assert firsts.count("committed as batch 1") == 1
    assert len(set(firsts) - dropped) == 1
    last, *seconds = handle_all(database_url, [third, second, second])
    assert last == "committed as batch 3"
    assert seconds.count("committed as batch 2") == 1
    assert len(set(seconds) - dropped) == 1
    coordinator.finished()
    assert_as_one_process(database_url, single_process)


def test_a_coordinator_without_workers_bills_each_batch_after_its_patience(
    database_url: str, single_process: dict
) -> None:
    prepare(database_url)
    started = time.monotonic()
    coordinator = Coordinator(database_url, patience=0.3)
    execution = coordinator.finished()
    assert execution.batches_committed == BATCHES
    assert time.monotonic() - started >= BATCHES * 0.3
    # Each batch was handed out once: billing the stalled one did not hand the
    # others out again.
    assert len(coordinator.orders) == BATCHES
    assert_as_one_process(database_url, single_process)


def test_a_manager_told_to_stop_stops_following_at_once(database_url: str) -> None:
    prepare(database_url)
    orders: list[BatchOrder] = []
    with billing_on(database_url) as billing:
        dispatch = BatchDispatch(billing, orders.extend, patience=NEVER)
        manager = Manager(billing, "m", batch_size=SIZE, dispatch=dispatch)
        outcomes: list[Managed | None] = []
        thread = threading.Thread(target=lambda: outcomes.append(manager.tick()), daemon=True)
        thread.start()
        wait_until(lambda: orders, timeout=60, what="the manager to hand its batches out")
        asked = time.monotonic()
        manager.stop()
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - asked < 2
        (managed,) = outcomes
        assert managed is not None and managed.outcome == "stopped"
        run = billing.get_run(RUN)
        assert run.lease_holder is None and run.batches == 0


# The work queue ------------------------------------------------------------------


@pytest.fixture
def queue(nats_server: str) -> Iterator[RunQueueNames]:
    names = RunQueueNames.of(StreamNames.for_prefix(f"test-{secrets.token_hex(4)}", "test"))
    yield names
    asyncio.run(delete_run_queue(nats_server, names))


def order(after: int) -> BatchOrder:
    return BatchOrder("queue-test", after, after + 4, SIZE, 1)


async def work_until(
    url: str, names: RunQueueNames, handler: BatchHandler, done: Callable[[], bool]
) -> None:
    """A worker on the queue (ack wait 3 s) until `done()` or 30 s."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(work_batches(url, names, handler, stop, 3))]
    deadline = time.monotonic() + 30
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)


def test_a_batch_handed_back_is_delivered_again(nats_server: str, queue: RunQueueNames) -> None:
    seen: list[int] = []

    def flaky(o: BatchOrder) -> str:
        seen.append(o.after)
        if seen.count(o.after) == 1:
            raise RuntimeError("the database went away")
        return "committed"

    asyncio.run(publish_orders(nats_server, queue, [order(0)], 3))
    asyncio.run(work_until(nats_server, queue, flaky, lambda: len(seen) >= 2))
    assert seen == [0, 0]


def test_a_slow_batch_still_at_work_is_not_given_to_another_worker(
    nats_server: str, queue: RunQueueNames
) -> None:
    """Ack wait 1 s, a batch that takes 2.5 s: the heartbeat (`in_progress` every
    third of the ack wait) keeps it with its worker; the idle one never gets it."""
    taken: list[tuple[str, int]] = []

    def slow(o: BatchOrder) -> str:
        taken.append(("slow", o.after))
        time.sleep(2.5)
        return "committed"

    def idle(o: BatchOrder) -> str:
        taken.append(("idle", o.after))
        return "committed"

    asyncio.run(publish_orders(nats_server, queue, [order(0)], 1))
    finished = threading.Event()

    def slow_then_done(o: BatchOrder) -> str:
        try:
            return slow(o)
        finally:
            finished.set()

    # The slow worker starts alone and takes the order, then the idle one joins.
    async def both() -> None:
        stop = asyncio.Event()
        slow_task = asyncio.create_task(work_batches(nats_server, queue, slow_then_done, stop, 1))
        while not taken:
            await asyncio.sleep(0.02)
        idle_task = asyncio.create_task(work_batches(nats_server, queue, idle, stop, 1))
        while not finished.is_set():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # past another ack wait: nothing comes back
        stop.set()
        await asyncio.gather(slow_task, idle_task)

    asyncio.run(both())
    assert taken == [("slow", 0)]
