"""Pausing Python's cyclic garbage collector around work that only allocates."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


class CollectorPause:
    """Who holds the collector paused, counted: `gc.disable()` is process-wide, and
    the bill-run executor and the renderer pause it from worker threads of one
    process.

    A plain disable/enable pair is wrong there: the first pauser to leave would
    enable the collector under the other still working, and a pauser that found
    it disabled (by another pauser) would leave it disabled for good if the first
    left before it looked. So the first pauser in records whether the collector
    was enabled and disables it; the last one out enables it again, and only if
    it was enabled before the first came in.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._was_enabled:
                    gc.enable()


_PROCESS_PAUSE = CollectorPause()
"""The one count for the process, because the collector it guards is the process's."""


def collector_paused() -> contextlib.AbstractContextManager[None]:
    """Hold Python's cyclic garbage collector for the span of one unit of work.

    Work such as one WeasyPrint rendering or one bill-run batch allocates tens of
    thousands of objects (boxes and styles; aggregates, events and lines) that
    all stay alive until the unit is done, so the collections those allocations
    trigger meanwhile find nothing to free: they were a tenth of a PDF's time and
    a sixth of a batch's CPU. The garbage is collected once afterwards, by the
    next automatic collection. Safe from several threads at once (see
    `CollectorPause`); a process that disabled the collector itself keeps it
    disabled.
    """
    return _PROCESS_PAUSE.paused()
