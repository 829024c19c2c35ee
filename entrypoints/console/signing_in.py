"""Signing in to the console with an API key, and out again.

The key is checked once, as the API checks it (`Authority.authenticate`); the
browser keeps only a session cookie (`sessions`). Service keys are refused:
they belong to programs.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from entrypoints.console.access import CONSOLE_SIGN_IN_ROLES
from entrypoints.console.routing import session_of
from entrypoints.console.sessions import COOKIE, Sessions
from entrypoints.console.views import render
from entrypoints.http.tenancy import Authority

router = APIRouter(prefix="/console", include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a console page of this server (never another site) after signing in."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return "/console/runs"


@router.get("")
@router.get("/")
def home() -> Response:
    return RedirectResponse("/console/runs", status_code=303)


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "") -> Response:
    return render(request, "sign_in.html", next=_safe_next(next), error=None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    authority: Authority = request.app.state.authority
    principal = await run_in_threadpool(authority.authenticate, key) if key else None
    if principal is None or principal.role not in CONSOLE_SIGN_IN_ROLES:
        error = (
            "Enter your API key (billrun apikey create --role operator)."
            if not key
            else "This key is unknown or revoked."
            if principal is None
            else f"A {principal.role.value} key cannot sign in: use an operator, admin or "
            "auditor key."
        )
        return render(request, "sign_in.html", status=401, next=target, error=error)
    sessions: Sessions = request.app.state.console_sessions
    session_id, _ = sessions.open(principal)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )
    return response


async def sign_out(request: Request) -> Response:
    sessions: Sessions = request.app.state.console_sessions
    session_of(request)
    sessions.close(request.cookies.get(COOKIE))
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response
