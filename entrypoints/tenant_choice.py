"""The tenant this invocation of `billrun` chose (`--tenant`), where the runtime
finds it. Kept apart from `entrypoints.common` so that the top-level command can
set it without importing the application."""

from __future__ import annotations

from contextvars import ContextVar

_CHOSEN: ContextVar[str | None] = ContextVar("billrun_chosen_tenant", default=None)


def choose_tenant(name: str | None) -> None:
    """Set (or, with None, forget) the tenant `--tenant` named. The top-level
    callback calls it at every invocation, so a value never outlives the command
    that gave it (tests run many in one process)."""
    _CHOSEN.set(name)


def chosen_tenant() -> str | None:
    return _CHOSEN.get()
