"""Cursor pagination, the same on every list: `limit` (default 20, at most 100)
and `after`, the opaque cursor the previous page ended with.

A page answers `{"items": [...], "next": "<cursor>" | null}`; `next` is null on
the last page. Cursors are positions in a stable order (commit order in the
event log, or a natural key), never offsets: an item written while a client
pages through a list moves no other item, so nothing is listed twice or skipped.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel

from entrypoints.http.problems import ProblemError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}.")]
After = Annotated[
    str | None,
    Query(
        max_length=200,
        description="The `next` cursor of the previous page; none: the first page.",
    ),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None
    """The cursor of the next page; null on the last one."""


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The position a cursor holds; a cursor this API did not give is refused."""
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_cursor(cursor) from None


def decode_int_cursor(cursor: str | None) -> int:
    """A cursor holding a position in the event log (0: from the start)."""
    text = decode_cursor(cursor)
    if text is None:
        return 0
    if not text.isdigit():
        raise _bad_cursor(cursor or "")
    return int(text)


def opened_cursor(key: tuple[datetime, UUID]) -> str:
    """The cursor of a page that ends at (opened_at, id): invoices, in the order
    they were opened (`projections/invoice_pages.py`), for the API and the console."""
    return encode_cursor(f"{key[0].isoformat()}|{key[1]}")


def opened_key(cursor: str | None) -> tuple[datetime, UUID] | None:
    """The (opened_at, id) an `opened_cursor` holds; None: the first page."""
    text = decode_cursor(cursor)
    if text is None:
        return None
    opened, _, item_id = text.partition("|")
    try:
        return datetime.fromisoformat(opened), UUID(item_id)
    except ValueError:
        raise _bad_cursor(cursor or "") from None


def _bad_cursor(cursor: str) -> ProblemError:
    from application.shared.errors import Problem

    return ProblemError(
        422,
        "invalid-input",
        "query: refused, 1 problem, nothing written",
        f"query.after: not a cursor this API gave: {cursor[:40]!r}",
        [Problem("query.after", "not a cursor this API gave (use a page's `next`)")],
    )


def page_of(
    sorted_items: Sequence[Any],
    key: Callable[[Any], str],
    after: str | None,
    limit: int,
    render: Callable[[Any], Any],
) -> dict[str, Any]:
    """One page of items already sorted by `key` (a natural key, e.g. a package id)."""
    position = decode_cursor(after)
    rest = [item for item in sorted_items if position is None or key(item) > position]
    chosen = rest[:limit]
    more = len(rest) > limit
    return {
        "items": [render(item) for item in chosen],
        "next": encode_cursor(key(chosen[-1])) if more and chosen else None,
    }
