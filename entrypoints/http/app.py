"""The FastAPI application: `create_app(authority)` for `billrun serve` and tests.

Tenants' books open on their first request and close when the server stops
(the lifespan), so a request never pays for migrating a schema twice.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic.warnings import UnsupportedFieldAttributeWarning

from entrypoints.http import problems
from entrypoints.http.books import Books
from entrypoints.http.limits import BodyLimit
from entrypoints.http.routers import all_routers
from entrypoints.http.tenancy import Authority

API_VERSION = "1.0.0"
DESCRIPTION = """billrun over HTTP: accounts, usage, charges, bill runs, invoices and
receivables of one tenant's billing book.

- Send an API key (`billrun apikey create`) as `Authorization: Bearer <key>`.
- Errors are RFC 9457 `application/problem+json`, listing every problem with its
  location; a refused request wrote nothing.
- Every POST, PUT, PATCH and DELETE takes an `Idempotency-Key`: the same key and
  request replay the first answer; the same key with another request is refused.
- Lists page with `limit` (default 20, at most 100) and the `next` cursor as `after`.
- `ETag` is the object's version; send it as `If-Match` to refuse a stale update (412).
"""


def create_app(authority: Authority) -> FastAPI:
    # FastAPI 0.163 gives a lone body parameter an `alias` pydantic 2.14 warns is
    # unused: noise on the operator's terminal, nothing to act on.
    warnings.filterwarnings("ignore", category=UnsupportedFieldAttributeWarning)
    books = Books(authority)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            books.close()

    app = FastAPI(
        title="billrun",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.authority = authority
    app.state.books = books
    problems.install(app)
    app.add_middleware(BodyLimit)
    for router in all_routers():
        app.include_router(router)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with error responses as `application/problem+json`."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if status.isdigit() and int(status) >= 400 and "application/json" in content:
                    content["application/problem+json"] = content.pop("application/json")
    app.openapi_schema = document
    return document
