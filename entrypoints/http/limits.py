"""Bounds on what one request may ask for, each refused with a clear problem.

- a body: at most `MAX_BODY_BYTES` (a usage batch of 1,000 records is ~250 KB);
- a page: `limit` at most 100 (`pagination`);
- a batch: at most `MAX_BATCH` items (usage).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH = 1000


class BodyLimit:
    """ASGI middleware: a body longer than the limit is answered 413 before the
    route reads it (by its Content-Length, or while it streams in without one)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, send)
            return
        received = 0
        too_long = False

        async def counted() -> Message:
            nonlocal received, too_long
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                too_long = True
                raise BodyTooLong
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLong:
            if too_long:
                await self._refuse(scope, send)
                return
            raise

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body: dict[str, Any] = {
            "type": "urn:billrun:problem:too-large",
            "title": "Request body too large",
            "status": 413,
            "detail": f"a request body may be at most {self.limit} bytes; send a large "
            f"batch as several requests of at most {MAX_BATCH} records",
            "instance": scope.get("path"),
            "errors": [],
        }
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class BodyTooLong(Exception):
    pass
