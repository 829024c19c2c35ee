"""The collector pause is right when two threads (the executor's and the renderer's)
hold it at once: the collector comes back only when the last one leaves."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from infrastructure.collector import collector_paused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def _hold(entered: threading.Event, leave: threading.Event) -> threading.Thread:
    def work() -> None:
        with collector_paused():
            entered.set()
            leave.wait(5)

    thread = threading.Thread(target=work)
    thread.start()
    assert entered.wait(5)
    return thread


@pytest.mark.parametrize("first_out", ["first_in", "second_in"])
def test_the_collector_stays_paused_until_the_last_thread_leaves(first_out: str) -> None:
    gc.enable()
    events = {name: (threading.Event(), threading.Event()) for name in ("first_in", "second_in")}
    threads = {name: _hold(*events[name]) for name in ("first_in", "second_in")}
    assert not gc.isenabled()

    events[first_out][1].set()
    threads[first_out].join(5)
    assert not gc.isenabled(), "re-enabled while another thread still holds the pause"

    last = "second_in" if first_out == "first_in" else "first_in"
    events[last][1].set()
    threads[last].join(5)
    assert gc.isenabled()


def test_a_collector_disabled_before_the_first_pause_stays_disabled() -> None:
    gc.disable()
    first = (threading.Event(), threading.Event())
    second = (threading.Event(), threading.Event())
    threads = [_hold(*first), _hold(*second)]
    for _, leave in (first, second):
        leave.set()
    for thread in threads:
        thread.join(5)
    assert not gc.isenabled()


def test_many_threads_pausing_at_random_leave_the_collector_enabled() -> None:
    gc.enable()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait(5)
        for _ in range(2000):
            with collector_paused():
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert gc.isenabled()
