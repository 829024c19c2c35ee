"""RFC 9457 problem details: every error the API answers, in one shape.

    {"type": "urn:billrun:problem:invalid-input", "title": "...", "status": 422,
     "detail": "...", "instance": "/v1/usage", "errors": [{"path": "records[3]",
     "message": "quantity: not a number: 'x'"}]}

The refusals and their locations are the CLI's (`entrypoints/refusals.py`): the
same input refused on the command line and over HTTP names the same problems at
the same paths. A refusal wrote nothing; so does a request refused for its shape
before any command ran.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from eventsourcing.persistence import IntegrityError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from application.shared.errors import Problem
from entrypoints.refusals import CONFLICTS, NOT_FOUND, REFUSALS, problems_of, title_of
from infrastructure.settings import ConfigurationError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class ProblemLocation(BaseModel):
    path: str
    message: str


class ProblemDocument(BaseModel):
    """The body of every error response (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemLocation] = []


class ProblemError(Exception):
    """Raised by the API itself (limits, keys, roles, preconditions)."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        errors: Sequence[Problem] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


def problem_response(request: Request | None, error: ProblemError) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:billrun:problem:{error.kind}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "errors": [{"path": p.path, "message": p.message} for p in error.errors],
    }
    if request is not None:
        body["instance"] = request.url.path
    return Response(
        orjson.dumps(body), status_code=error.status, media_type=MEDIA_TYPE, headers=error.headers
    )


def refusal(error: Exception) -> ProblemError:
    """A refusal of the application, as the problem the API answers with."""
    problems = problems_of(error)
    if isinstance(error, NOT_FOUND):
        return ProblemError(404, "not-found", title_of(error), str(error), problems)
    if isinstance(error, CONFLICTS):
        return ProblemError(409, "exists", "Exists already, nothing written", str(error), problems)
    if isinstance(error, ConfigurationError):  # the server's settings, not the request
        return ProblemError(500, "misconfigured", "billrun is misconfigured", str(error))
    detail = problems[0].message if len(problems) == 1 else str(error).splitlines()[0]
    return ProblemError(422, "refused", title_of(error), detail, problems)


def validation_problem(error: RequestValidationError) -> ProblemError:
    """FastAPI's own validation of a request (types, required fields, bounds)."""
    problems = [
        Problem(_location(detail.get("loc", ())), str(detail.get("msg", "invalid")))
        for detail in error.errors()
    ]
    noun = "problem" if len(problems) == 1 else "problems"
    return ProblemError(
        422,
        "invalid-input",
        f"request: refused, {len(problems)} {noun}, nothing written",
        "; ".join(str(p) for p in problems),
        problems,
    )


def _location(loc: Sequence[Any]) -> str:
    """`("body", "records", 3, "quantity")` -> `records[3].quantity`; a query
    parameter or header keeps its origin: `query.limit`, `header.if-match`."""
    parts = list(loc)
    origin = parts.pop(0) if parts and parts[0] in ("body", "query", "path", "header") else ""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    if origin in ("query", "path", "header"):
        return f"{origin}.{text}" if text else origin
    return text or "body"


def problem_of(error: Exception) -> ProblemError:  # noqa: PLR0911 (one return per kind)
    """The problem that answers `error`, whatever raised it."""
    if isinstance(error, ProblemError):
        return error
    if isinstance(error, REFUSALS):
        return refusal(error)
    if isinstance(error, RequestValidationError):
        return validation_problem(error)
    if isinstance(error, StarletteHTTPException):
        title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "Refused")
        return ProblemError(
            error.status_code, "http", title, str(error.detail), headers=dict(error.headers or {})
        )
    if isinstance(error, IntegrityError):  # optimistic concurrency: another writer won
        return ProblemError(
            409,
            "conflict",
            "Changed concurrently, nothing written",
            "another request changed the same object at the same time; read it again "
            "and retry (with the same Idempotency-Key)",
        )
    fault = _database_fault(error)
    if fault is not None:
        return ProblemError(
            503, "unavailable", "Database unavailable", fault, headers={"Retry-After": "5"}
        )
    log.error("unexpected error", exc_info=error)
    return ProblemError(500, "fault", "Internal error", "the request failed; see the server log")


def _database_fault(error: Exception) -> str | None:
    from entrypoints.cli import database_fault

    return database_fault(error)


def response_for(request: Request, error: Exception) -> Response:
    return problem_response(request, problem_of(error))


def install(app: FastAPI) -> None:
    """Answer every error with a problem document."""

    async def handle(request: Request, error: Exception) -> Response:
        return response_for(request, error)

    kinds: tuple[type[Exception], ...] = (
        ProblemError,
        *REFUSALS,
        RequestValidationError,
        StarletteHTTPException,
        IntegrityError,
        Exception,
    )
    for kind in kinds:
        app.add_exception_handler(kind, handle)
