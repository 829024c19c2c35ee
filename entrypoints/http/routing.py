"""What runs around every route: the key, the role table, the tenant's book,
the actor of writes and the Idempotency-Key, in that order.

A route class (FastAPI's `route_class`) rather than middleware: it knows which
route matched (the role table is keyed by the route's path, not the URL), and
it sees the route's response, which an idempotent write records and replays.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from entrypoints.http import idempotency
from entrypoints.http.books import Book, Books
from entrypoints.http.security import WRITES, authenticate, authorize
from entrypoints.http.tenancy import Authority, Principal


class Guarded(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        path = self.path_format

        async def guarded(request: Request) -> Response:
            authority: Authority = request.app.state.authority
            books: Books = request.app.state.books
            # Looking the key up is a query: off the event loop, as the routes are.
            principal = await run_in_threadpool(authenticate, request, authority)
            authorize(principal, request.method, path)
            request.state.book = await run_in_threadpool(books.of, principal.tenant)
            if request.method not in WRITES:
                return await handler(request)
            with authority.acting_as(principal):
                key = request.headers.get(idempotency.HEADER)
                if key is None:
                    return await handler(request)
                return await idempotency.idempotent(
                    request,
                    request.state.book,
                    principal,
                    idempotency.checked_key(key),
                    handler,
                )

        return guarded


def book_of(request: Request) -> Book:
    """The caller's tenant's book (a route dependency)."""
    book: Book = request.state.book
    return book


def principal_of(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal
