"""Signing in to the console with an API key, and out again.

The key is checked once, as the API checks it (`Authority.authenticate`); the
browser keeps only a session cookie (`sessions`). Service keys are refused:
they belong to programs.

The sign-in form is protected against login CSRF (another site signing the
browser in to the attacker's tenant, so the victim types data into it): the
page sets a random token in a SameSite=Strict cookie scoped to the sign-in path
and repeats it in the form; a POST whose form token is not the cookie's is
refused. A foreign site's form carries neither the cookie (SameSite) nor the
token (it cannot read our page).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from entrypoints.console.access import CONSOLE_SIGN_IN_ROLES
from entrypoints.console.routing import session_of
from entrypoints.console.sessions import COOKIE, CSRF_FIELD, Sessions
from entrypoints.console.views import render
from entrypoints.http.tenancy import Authority

router = APIRouter(prefix="/console", include_in_schema=False)

SIGN_IN_COOKIE = "billrun_console_sign_in"
SIGN_IN_PATH = "/console/sign-in"
SIGN_IN_SECONDS = 3600
"""How long a sign-in form stays usable: an hour-old form is reloaded."""


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
    return _sign_in_form(request, _safe_next(next), None, 200)


def _sign_in_form(request: Request, target: str, error: str | None, status: int) -> Response:
    """The form with a fresh token, the same in its cookie (see the module's doc)."""
    token = secrets.token_urlsafe(32)
    response = render(
        request, "sign_in.html", status=status, next=target, error=error, sign_in_token=token
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=SIGN_IN_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=SIGN_IN_PATH,
    )
    return response


def _token_matches(request: Request, sent: str | None) -> bool:
    kept = request.cookies.get(SIGN_IN_COOKIE)
    if not kept or not sent:
        return False
    return hmac.compare_digest(kept.encode(), sent.encode())


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    if not _token_matches(request, (form.get(CSRF_FIELD) or [""])[0]):
        # Before the key is even looked at: a forged sign-in learns nothing.
        stale = "This sign-in form expired or did not come from this console: sign in again."
        return _sign_in_form(request, target, stale, 403)
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
        return _sign_in_form(request, target, error, 401)
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
    response.delete_cookie(SIGN_IN_COOKIE, path=SIGN_IN_PATH)  # used once
    return response


async def sign_out(request: Request) -> Response:
    sessions: Sessions = request.app.state.console_sessions
    session_of(request)
    sessions.close(request.cookies.get(COOKIE))
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response
