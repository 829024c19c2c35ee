"""Who may do what in the console: one table of routes to roles, as the API's.

The console's routes are not in the OpenAPI document (they answer HTML), so
they have their own table beside `entrypoints.http.security.ROUTE_ROLES`, built
from the same role sets. A route missing from it is refused to everybody. The
server enforces it on every request: an auditor's session that forges a write
is refused here, whatever buttons the page showed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from entrypoints.http.security import ADMIN, OPERATORS, READERS
from entrypoints.http.tenancy import Principal, Role

CONSOLE_ROLES: Final[Mapping[tuple[str, str], frozenset[Role]]] = {
    ("GET", "/console/runs"): READERS,
    ("POST", "/console/runs"): OPERATORS,
    ("GET", "/console/runs/{run_id}"): READERS,
    ("GET", "/console/runs/{run_id}/execution"): READERS,
    ("POST", "/console/runs/{run_id}/description"): OPERATORS,
    ("POST", "/console/runs/{run_id}/preview"): OPERATORS,
    ("POST", "/console/runs/{run_id}/execute"): OPERATORS,
    ("POST", "/console/runs/{run_id}/process"): OPERATORS,
    ("POST", "/console/runs/{run_id}/disable"): OPERATORS,
    ("POST", "/console/runs/{run_id}/enable"): OPERATORS,
    ("POST", "/console/runs/{run_id}/cancel"): OPERATORS,
    ("POST", "/console/runs/{run_id}/retry"): OPERATORS,
    ("POST", "/console/runs/{run_id}/documents"): OPERATORS,
    ("POST", "/console/runs/{run_id}/review"): OPERATORS,
    ("GET", "/console/invoices/{invoice_id}"): READERS,
    ("GET", "/console/invoices/{invoice_id}/documents/{document_format}"): READERS,
    ("GET", "/console/accounts/{account_id}"): READERS,
    ("GET", "/console/audit"): READERS,
    ("GET", "/console/audit/verify"): READERS,
    ("GET", "/console/audit/projections"): READERS,
    ("POST", "/console/audit/projections/{name}/rebuild"): ADMIN,
    ("POST", "/console/sign-out"): READERS,
}
"""(method, route path) -> the roles that may call it: everyone signed in reads;
operators and admins act on runs and invoices; only admins rebuild read models."""

CONSOLE_SIGN_IN_ROLES: Final = READERS
"""Service keys belong to programs: they cannot sign in to the console."""


def may(principal: Principal, method: str, path: str) -> bool:
    return principal.role in CONSOLE_ROLES.get((method, path), frozenset())


def writes(principal: Principal) -> bool:
    """Whether the page should offer write buttons at all (the server still checks
    each request against the table)."""
    return principal.role in OPERATORS
