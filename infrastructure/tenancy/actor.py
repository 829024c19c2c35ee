"""Who is acting: the principal an API key (or the command line) stands for, and
the actor every event written inside `acting_as` records in its metadata."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    ADMIN = "admin"
    """Everything."""
    OPERATOR = "operator"
    """Runs, invoice review, payments."""
    AUDITOR = "auditor"
    """Reads, history, audit verify; no writes."""
    SERVICE = "service"
    """Accounts, usage, charges; reads of its own writes."""


@dataclass(frozen=True)
class Principal:
    """Who a request or a command acts as, in one tenant."""

    tenant: str
    key_id: str
    """The API key's id (its lookup prefix); `cli` for the command line, `worker`
    for background services."""
    role: Role
    name: str | None = None
    """The key's label, or the OS user of the command line."""

    def actor(self) -> dict[str, Any]:
        """What an event records about who wrote it (the tenant is implied by the
        schema the event is stored in)."""
        recorded: dict[str, Any] = {"key_id": self.key_id, "role": str(self.role)}
        if self.name is not None:
            recorded["name"] = self.name
        return recorded


_ACTING: ContextVar[Principal | None] = ContextVar("billrun_acting_as", default=None)


def current_principal() -> Principal | None:
    """The principal writes are recorded under here, None outside `acting_as`."""
    return _ACTING.get()


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Every event stored inside this block records `principal` as its actor.

    A context variable, so each request (asyncio task, or thread started with
    `asyncio.to_thread`, which copies the context) has its own.
    """
    token = _ACTING.set(principal)
    try:
        yield principal
    finally:
        _ACTING.reset(token)


def command_line_principal(tenant: str, key_id: str = "cli") -> Principal:
    """The operator at the billing host: `cli` (or `worker` for the background
    services) and the OS user, with every right (whoever can run `billrun` on the
    host can read its database URL too)."""
    try:
        user: str | None = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = None
    return Principal(tenant=tenant, key_id=key_id, role=Role.ADMIN, name=user)
