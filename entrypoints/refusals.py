"""What billrun refuses, and how a refusal is reported: one place for the CLI
(a line on stderr, exit 2) and the HTTP API (an RFC 9457 problem).

Both report the same problems at the same locations: an input refused whole
(`InvalidInput`) lists every problem with its path (`line 7`, `records[3]`),
anything else refused is one problem without a path.
"""

from __future__ import annotations

from application.billing.accounts import AccountExists
from application.invoicing.bill_groups import BillGroupNotConfigured
from application.runs.scheduler import ScheduleNotFound
from application.shared.errors import (
    AccountNotFound,
    ApplicationError,
    InvalidInput,
    InvoiceNotFound,
    Problem,
    RunNotFound,
)
from domain.shared.errors import DomainError
from infrastructure.persistence import ForgedEventError
from infrastructure.settings import ConfigurationError
from infrastructure.tenancy import TenancyError, UnknownKey, UnknownTenant


class UsageError(Exception):
    """Bad input to a command or a request (an option, a query parameter, a
    field), reported like any other refusal."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.problem = Problem(path, message)


REFUSALS: tuple[type[Exception], ...] = (
    ApplicationError,
    DomainError,
    UsageError,
    ConfigurationError,
    ForgedEventError,
    TenancyError,
)
"""Errors that mean "refused, nothing written" (everything else is a fault)."""

NOT_FOUND: tuple[type[Exception], ...] = (
    AccountNotFound,
    RunNotFound,
    InvoiceNotFound,
    ScheduleNotFound,
    BillGroupNotConfigured,
    UnknownKey,
    UnknownTenant,
)
"""Refusals that mean the object named does not exist (in this tenant's book)."""

CONFLICTS: tuple[type[Exception], ...] = (AccountExists,)
"""Refusals that mean the object exists already (HTTP 409)."""


def problems_of(error: Exception) -> list[Problem]:
    """Each thing wrong, with where, as the CLI prints them."""
    if isinstance(error, InvalidInput):
        return list(error.problems)
    if isinstance(error, UsageError):
        return [error.problem]
    return [Problem("", str(error))]


def title_of(error: Exception) -> str:
    """One line for the problem's title: what kind of refusal this is."""
    if isinstance(error, InvalidInput):
        count = len(error.problems)
        return f"{error.source}: refused, {count} problem{'s' * (count != 1)}, nothing written"
    if isinstance(error, NOT_FOUND):
        return "Not found"
    return "Refused, nothing written"
