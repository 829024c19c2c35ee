"""What every router shares: the /v1 prefix, the guarded route class, the key
in the OpenAPI document, the problem responses, and the book dependency."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Security

from entrypoints.http.books import Book
from entrypoints.http.problems import ProblemDocument
from entrypoints.http.routing import Guarded, book_of
from entrypoints.http.security import bearer

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDocument, "description": description}
    for status, description in (
        (400, "The body is not JSON"),
        (401, "No key, or a key that is unknown or revoked"),
        (403, "The key's role may not call this route"),
        (404, "Not found in the key's tenant"),
        (409, "Exists already, changed concurrently, or in progress"),
        (412, "If-Match names a version that is not the current one"),
        (413, "The request body is too large"),
        (422, "Refused: every problem with its location; nothing written"),
    )
}

TenantBook = Annotated[Book, Depends(book_of)]


def v1_router(tag: str) -> APIRouter:
    return APIRouter(
        prefix="/v1",
        tags=[tag],
        route_class=Guarded,
        dependencies=[Security(bearer)],
        responses=_PROBLEMS,
    )
