"""The key on each request, and the one table that maps routes to roles.

Every request names its key as `Authorization: Bearer <key>`. The key gives the
tenant (whose book the request reads and writes: another tenant's objects are
simply not there, so they are 404, never 403) and the role, which the table
below must allow for the route. A route missing from the table is refused to
everybody: a new route is closed until someone decides who may call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fastapi import Request
from fastapi.security import HTTPBearer

from entrypoints.http.problems import ProblemError
from entrypoints.http.tenancy import Authority, Principal, Role

bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`billrun apikey create`), as `Authorization: Bearer <key>`.",
)

ADMIN: Final = frozenset({Role.ADMIN})
OPERATORS: Final = frozenset({Role.ADMIN, Role.OPERATOR})
READERS: Final = frozenset({Role.ADMIN, Role.OPERATOR, Role.AUDITOR})
SERVICES: Final = frozenset({Role.ADMIN, Role.SERVICE})
"""Writes of accounts, usage and charges: the services that own them."""
SERVICE_READS: Final = READERS | {Role.SERVICE}
"""Reads of what services write (accounts, usage, charges)."""

ROUTE_ROLES: Final[Mapping[tuple[str, str], frozenset[Role]]] = {
    # Accounts and their settings: written by services, read by everyone.
    ("POST", "/v1/accounts"): SERVICES,
    ("GET", "/v1/accounts"): SERVICE_READS,
    ("GET", "/v1/accounts/{account_id}"): SERVICE_READS,
    ("PATCH", "/v1/accounts/{account_id}"): SERVICES,
    ("PUT", "/v1/accounts/{account_id}/invoicer"): SERVICES,
    ("POST", "/v1/accounts/{account_id}/packages"): SERVICES,
    ("POST", "/v1/accounts/{account_id}/suspend"): OPERATORS,
    ("POST", "/v1/accounts/{account_id}/reactivate"): OPERATORS,
    ("PUT", "/v1/accounts/{account_id}/terms"): SERVICES | {Role.OPERATOR},
    ("PUT", "/v1/accounts/{account_id}/autopay"): SERVICES | {Role.OPERATOR},
    # Usage, one-off charges and credits, contracts.
    ("POST", "/v1/usage"): SERVICES,
    ("POST", "/v1/usage/batches"): SERVICES,
    ("GET", "/v1/accounts/{account_id}/usage"): SERVICE_READS,
    ("POST", "/v1/charges"): SERVICES,
    ("GET", "/v1/accounts/{account_id}/charges"): SERVICE_READS,
    ("POST", "/v1/contracts"): SERVICES,
    ("GET", "/v1/accounts/{account_id}/contracts"): SERVICE_READS,
    # How invoices close, are reviewed and delivered.
    ("GET", "/v1/bill-groups"): READERS,
    ("GET", "/v1/bill-groups/{group_id}"): READERS,
    ("PUT", "/v1/bill-groups/{group_id}"): ADMIN,
    # When runs are queued, and the rates they fix.
    ("GET", "/v1/schedules"): READERS,
    ("POST", "/v1/schedules"): OPERATORS,
    ("GET", "/v1/schedules/{name}"): READERS,
    ("DELETE", "/v1/schedules/{name}"): OPERATORS,
    ("GET", "/v1/exchange-rates"): READERS,
    ("POST", "/v1/exchange-rates"): ADMIN,
    # Receivables.
    ("POST", "/v1/payments"): OPERATORS,
    ("GET", "/v1/accounts/{account_id}/payments"): READERS,
    ("GET", "/v1/accounts/{account_id}/balance"): READERS,
    ("GET", "/v1/aging"): READERS,
    # Bill runs: operators run them, auditors read them.
    ("POST", "/v1/runs"): OPERATORS,
    ("GET", "/v1/runs"): READERS,
    ("GET", "/v1/runs/{run_id}"): READERS,
    ("GET", "/v1/runs/{run_id}/check"): READERS,
    ("GET", "/v1/runs/{run_id}/report"): READERS,
    ("GET", "/v1/runs/{run_id}/statistics"): READERS,
    **{
        ("POST", f"/v1/runs/{{run_id}}/{step}"): OPERATORS
        for step in (
            "preview",
            "description",
            "execute",
            "process",
            "disable",
            "enable",
            "resume",
            "cancel",
            "retry",
        )
    },
    # Invoices: operators review and credit them, auditors read them.
    ("GET", "/v1/invoices"): READERS,
    ("GET", "/v1/invoices/{invoice_id}"): READERS,
    ("GET", "/v1/invoices/{invoice_id}/documents"): READERS,
    ("GET", "/v1/invoices/{invoice_id}/documents/{document_format}"): READERS,
    ("POST", "/v1/invoices/{invoice_id}/credit-notes"): OPERATORS,
    **{
        (method_path): OPERATORS
        for action in ("approve", "quarantine", "unquarantine", "reject", "cancel")
        for method_path in (
            ("POST", f"/v1/invoices/{action}"),
            ("POST", f"/v1/invoices/{{invoice_id}}/{action}"),
        )
    },
    # History and audit: auditors (and operators) read; rebuilding read models is admin's.
    ("GET", "/v1/history"): READERS,
    ("GET", "/v1/runs/{run_id}/history"): READERS,
    ("GET", "/v1/accounts/{account_id}/history"): READERS,
    ("GET", "/v1/invoices/{invoice_id}/history"): READERS,
    ("GET", "/v1/audit/verify"): READERS,
    ("GET", "/v1/projections"): READERS,
    ("POST", "/v1/projections/{projection}/rebuild"): ADMIN,
}
"""(method, route path) -> the roles that may call it. Admin may call everything;
operators runs, review and payments; auditors read (no writes); services
accounts, usage and charges, and read them back."""

WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def roles_for(method: str, path: str) -> frozenset[Role]:
    return ROUTE_ROLES.get((method, path), frozenset())


def authenticate(request: Request, authority: Authority) -> Principal:
    """The caller's principal (remembered on the request), or 401."""
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    principal = authority.authenticate(key.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise ProblemError(
            401,
            "unauthenticated",
            "Unauthenticated",
            "send an API key as `Authorization: Bearer <key>` (billrun apikey create)",
            headers={"WWW-Authenticate": 'Bearer realm="billrun"'},
        )
    request.state.principal = principal
    return principal


def authorize(principal: Principal, method: str, path: str) -> None:
    """403 when the key's role may not call the route. Checked before the route
    loads anything, so a refusal says nothing about the object it names."""
    if principal.role not in roles_for(method, path):
        raise ProblemError(
            403,
            "forbidden",
            "Forbidden",
            f"a {principal.role.value} key may not call {method} {path}",
        )
