"""What runs around every console route: the session, the CSRF token of writes,
the role table, the tenant's book and the actor of writes, in that order.

The API's equivalent is `entrypoints.http.routing.Guarded`; this one reads a
session cookie instead of a bearer key and answers refusals as pages (a
sign-in redirect, a 403 page), never problem documents.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from entrypoints.console.access import may
from entrypoints.console.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, Sessions
from entrypoints.console.views import error_page
from entrypoints.http.books import Book, Books
from entrypoints.http.problems import problem_of
from entrypoints.http.security import WRITES
from entrypoints.http.tenancy import Authority

Form = dict[str, list[str]]


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        path = self.path_format

        async def guarded(request: Request) -> Response:
            sessions: Sessions = request.app.state.console_sessions
            session = sessions.get(request.cookies.get(COOKIE))
            if session is None:
                return _to_sign_in(request)
            request.state.session = session
            write = request.method in WRITES
            if write and not session.accepts(await _csrf_token(request)):
                return error_page(request, 403, "This form is stale: reload the page and retry.")
            if not may(session.principal, request.method, path):
                what = "change anything" if write else "open this page"
                return error_page(
                    request, 403, f"A {session.principal.role.value} key may not {what} here."
                )
            books: Books = request.app.state.books
            request.state.book = await run_in_threadpool(books.of, session.principal.tenant)
            try:
                if not write:
                    return await handler(request)
                authority: Authority = request.app.state.authority
                with authority.acting_as(session.principal):
                    return await handler(request)
            except Exception as error:  # every refusal becomes a page, as the API's a problem
                problem = problem_of(error)
                return error_page(request, problem.status, problem.detail, problem.errors)

        return guarded


def _to_sign_in(request: Request) -> Response:
    if request.method in WRITES:
        return error_page(request, 401, "Your session ended: sign in again.")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/sign-in?next={quote(target)}", status_code=303)


async def _csrf_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    return first(await form_of(request), CSRF_FIELD)


async def form_of(request: Request) -> Form:
    """The urlencoded form of a POST (parsed here: no multipart dependency for
    forms that carry no files)."""
    cached = getattr(request.state, "form", None)
    if cached is None:
        cached = parse_qs((await request.body()).decode("utf-8", "replace"))
        request.state.form = cached
    form: Form = cached
    return form


def first(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0].strip() if values else None


def session_of(request: Request) -> Session:
    session: Session = request.state.session
    return session


def book_of(request: Request) -> Book:
    book: Book = request.state.book
    return book
