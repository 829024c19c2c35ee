"""Pausing Python's cyclic garbage collector around work that only allocates."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector for the span of one unit of work.

    Work such as one WeasyPrint rendering or one bill-run batch allocates tens of
    thousands of objects (boxes and styles; aggregates, events and lines) that
    all stay alive until the unit is done, so the collections those allocations
    trigger meanwhile find nothing to free: they were a tenth of a PDF's time and
    a sixth of a batch's CPU. The garbage is collected once afterwards, by the
    next automatic collection. A caller that already disabled the collector
    keeps it disabled.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
