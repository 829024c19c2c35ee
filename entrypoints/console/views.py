"""Rendering console pages: the jinja2 templates shipped in this package, with
filters for money and statuses, and every page given the session's CSRF token
and whether its role writes."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from application.shared.errors import Problem
from domain.invoicing.credit_notes import percent
from entrypoints import output

STATUS_TONES = {
    "scheduled": "info", "running": "busy", "closing": "busy", "collecting": "busy",
    "completed": "ok", "failed": "bad", "cancelled": "muted", "disabled": "warn",
    "drafts_ready": "warn", "validated": "info", "draft": "info", "approved": "ok",
    "quarantined": "warn", "rejected": "bad", "open": "muted", "closed": "info",
    "paid": "ok", "overdue": "bad", "partially_paid": "warn", "current": "ok",
    "needs rebuild": "bad",
}  # fmt: skip
"""Each status's colour class (`tone-ok`, ...): the same status, the same colour
on every page."""


def money(amount: Decimal | str | None, currency: str) -> str:
    """`1,234.50 EUR` at the currency's minor unit; empty for no amount."""
    if amount is None or amount == "":
        return ""
    return output.money(Decimal(str(amount)), currency)


def percent_of(rate: Decimal | str | None) -> str:
    """A tax rate (in percent, as invoices keep it) as `21 %` or `0 %`, as the CLI
    and the documents print it; empty for no rate."""
    if rate is None or rate == "":
        return ""
    return percent(Decimal(str(rate)))


def thousands(value: Any) -> Any:
    """A count as `100,000` (money has `money`); anything else as it is."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value


def tone(status: str | None) -> str:
    return "tone-" + STATUS_TONES.get(status or "", "muted")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("entrypoints.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["tone"] = tone
    env.filters["percent"] = percent_of
    env.filters["thousands"] = thousands
    env.filters["label"] = lambda text: str(text).replace("_", " ")
    return env


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    session = getattr(request.state, "session", None)
    from entrypoints.console.access import writes

    page = (
        environment()
        .get_template(template)
        .render(
            request=request,
            session=session,
            csrf=session.csrf if session else "",
            can_write=session is not None and writes(session.principal),
            is_admin=session is not None and session.principal.role.value == "admin",
            **context,
        )
    )
    return HTMLResponse(page, status_code=status)


def error_page(
    request: Request, status: int, detail: str, errors: Sequence[Problem] = ()
) -> HTMLResponse:
    titles = {401: "Signed out", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
    return render(
        request,
        "error.html",
        status=status,
        title=titles.get(status, "Refused" if status < 500 else "Error"),
        detail=detail,
        errors=list(errors),
    )


def field_errors(errors: Sequence[Problem]) -> dict[str, str]:
    """Problems by the form field they name (`period_end`, `selection.groups[0]`
    -> `groups`), to be shown beside it."""
    found: dict[str, str] = {}
    for problem in errors:
        name = problem.path.split(".")[-1].split("[")[0].lstrip("-").replace("-", "_")
        found.setdefault(name or "form", problem.message)
    return found
