"""Idempotency-Key on every write: one key, one effect, one answer.

- The first request with a key runs its command with the key's record riding
  along (`application/shared/idempotency.py`): the record commits in the same
  transaction as the command's events, then the answer (status, body, the
  headers that matter) is recorded on it.
- The same key with the same request (method, path, query, body) replays that
  answer, with `Idempotent-Replayed: true`.
- The same key with another request is refused (422), changing nothing.
- Two requests racing with one key: one commits its record and its events; the
  other's save fails on the record's version, so its events are not written
  either, and it replays the winner's answer once recorded.

A request refused before it wrote anything (bad input) records nothing: sending
it again is refused again, the same way. Keys are scoped to the tenant.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

from eventsourcing.persistence import IntegrityError
from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from application.shared.errors import Problem
from application.shared.idempotency import answer, find_record, riding_along
from domain.shared.idempotency import IdempotencyRecord
from entrypoints.http.books import Book
from entrypoints.http.problems import ProblemError, problem_response, response_for
from entrypoints.http.tenancy import Principal

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEPT_HEADERS = ("content-type", "etag", "location")
WAIT_FOR_ANSWER_SECONDS = 10.0

Handler = Callable[[Request], Awaitable[Response]]


def fingerprint(request: Request, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


def checked_key(raw: str) -> str:
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or not raw.isascii() or not raw.isprintable():
        raise ProblemError(
            422,
            "invalid-input",
            "header: refused, 1 problem, nothing written",
            f"{HEADER}: 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            [Problem(f"header.{HEADER.lower()}", "1 to 255 printable ASCII characters")],
        )
    return raw


async def idempotent(
    request: Request, book: Book, principal: Principal, key: str, handler: Handler
) -> Response:
    """Run `handler` once for (tenant, key); replay its answer to every retry."""
    body = await request.body()  # kept by the request: the route reads it again
    print_ = fingerprint(request, body)
    billing = book.billing
    found = await run_in_threadpool(find_record, billing, principal.tenant, key)
    if found is not None:
        return await _replay(request, book, principal, key, found, print_)
    record = IdempotencyRecord.accept(principal.tenant, key, print_, billing.clock())
    with riding_along(record) as ride:
        try:
            response = await handler(request)
        except IntegrityError:
            # Our record or our command lost a race; if the record lost, the other
            # request with this key committed: answer what it answers.
            if not ride.committed:
                found = await run_in_threadpool(find_record, billing, principal.tenant, key)
                if found is not None:
                    return await _replay(request, book, principal, key, found, print_)
            raise
        except Exception as error:
            if not ride.committed:
                raise  # nothing written: nothing to remember
            # Written, then refused or failed: that answer is the one to replay.
            response = response_for(request, error)
    if not ride.committed and response.status_code >= 400:
        return response  # refused before writing anything: nothing to remember
    status, content = response.status_code, bytes(response.body).decode()
    kept = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    recorded = await run_in_threadpool(
        answer, billing, ride, status, content, kept, billing.clock()
    )
    if not recorded:  # another request with this key committed first
        found = await run_in_threadpool(find_record, billing, principal.tenant, key)
        if found is not None:
            return await _replay(request, book, principal, key, found, print_)
    return response


async def _replay(
    request: Request,
    book: Book,
    principal: Principal,
    key: str,
    record: IdempotencyRecord,
    print_: str,
) -> Response:
    if record.fingerprint != print_:
        raise ProblemError(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused with another request, nothing written",
            f"the key {key!r} was first used for another request (method, path, query "
            "or body differ); use a new key for a new request",
            [Problem(f"header.{HEADER.lower()}", "used before for another request")],
        )
    deadline = time.monotonic() + WAIT_FOR_ANSWER_SECONDS
    while not record.answered:  # the first request committed, its answer follows
        if time.monotonic() > deadline:
            return problem_response(
                request,
                ProblemError(
                    409,
                    "in-progress",
                    "A request with this Idempotency-Key is in progress",
                    "retry in a moment to get its answer",
                    headers={"Retry-After": "1"},
                ),
            )
        await asyncio.sleep(0.05)
        found = await run_in_threadpool(find_record, book.billing, principal.tenant, key)
        record = found if found is not None else record
    headers = {**record.headers, "Idempotent-Replayed": "true"}
    return Response(record.body.encode(), status_code=record.status or 200, headers=headers)
