"""Rebuilding a read model beside the one serving reads, then switching over.

1. The next version (`v<code version>_<generation>`) is built from the first
   event into its own tables, while readers keep using the active version.
2. It catches up with events written meanwhile, until a pass finds the head
   unchanged.
3. One UPDATE of the registry makes it active (readers switch atomically), and
   the old version's tables are dropped. A read side serving reads in the same
   process (`serving`: a server's, while the rebuild runs on a read side of its
   own) is held for this step and forgets the old version with it, so none of
   its reads meets a dropped table.

Interrupted at any point, the active version keeps serving; the registry
remembers the version being built, and running the rebuild again resumes it
(or, if the code version changed meanwhile, drops it and starts afresh).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from application.shared.errors import ApplicationError
from projections.catalog import READ_MODELS, ReadSide
from projections.view import catch_up, open_view, suffix_version


class RebuildRefused(ApplicationError):
    pass


@dataclass(frozen=True)
class RebuildOutcome:
    name: str
    replaced: str
    active: str
    resumed: bool
    positions: int
    """Log positions caught up (events of other read models' topics included)."""
    seconds: float


def rebuild(
    read_side: ReadSide,
    name: str,
    on_progress: Callable[[int, int], None] | None = None,
    page_size: int = 5000,
    serving: Callable[[], AbstractContextManager[ReadSide]] | None = None,
) -> RebuildOutcome:
    model = READ_MODELS.get(name)
    if model is None:
        raise RebuildRefused(f"no read model {name!r}; known: {', '.join(READ_MODELS)}")
    if not model.rebuildable:
        raise RebuildRefused(
            f"{name} is never rebuilt: it would seal whatever the log holds now, tampering "
            "included. Check it with `billrun audit verify`."
        )
    app, env, registry = read_side.app, read_side.env, read_side.registry
    version = model.view_class.version
    registration = registry.get(name, version)
    resumed = bool(registration.building) and suffix_version(registration.building or "") == version
    if resumed:
        suffix = registration.building or ""
    else:
        if registration.building:
            open_view(model.view_class, env, registration.building).drop()
        generation = registration.generation + 1
        suffix = f"v{version}_{generation}"
        registry.begin_build(name, suffix, generation)
    view = open_view(model.view_class, env, suffix)
    started = time.perf_counter()
    first_position = view.max_tracking_id(app.name) or 0
    try:
        while True:
            head = catch_up(app, view, model.topics, page_size=page_size, on_progress=on_progress)
            if app.queries.head() == head:
                break
    finally:
        view.datastore.close()
    with (serving or (lambda: nullcontext(read_side)))() as served:
        replaced = registry.switch(name, suffix)
        if replaced != suffix:
            old = open_view(model.view_class, env, replaced)
            old.drop()
            old.datastore.close()
        served.forget(name)
    read_side.forget(name)
    return RebuildOutcome(
        name=name,
        replaced=replaced,
        active=suffix,
        resumed=resumed,
        positions=head - first_position,
        seconds=time.perf_counter() - started,
    )
