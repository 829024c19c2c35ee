"""/v1/bill-groups: how a group's invoices close, are reviewed and delivered.

A group is configured as an import file's `bill_groups` record configures it
(the same checks, the same events); the id is the path's.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from application.billing.import_document import BillGroupRecord
from application.invoicing.bill_groups import (
    bill_groups,
    configure_bill_group,
    configured_bill_group,
)
from entrypoints.http.etags import check_if_match, tag
from entrypoints.http.pagination import After, Limit, page_of
from entrypoints.http.routers.common import TenantBook, v1_router
from entrypoints.representations import bill_group_json

router = v1_router("bill groups")

Json = dict[str, Any]


class BillGroupSettings(BillGroupRecord):
    """A bill group record without its id (the path names the group)."""

    id: str | None = None  # type: ignore[assignment]


@router.get("/bill-groups", summary="List bill groups")
def list_bill_groups(book: TenantBook, limit: Limit = 20, after: After = None) -> Json:
    """Every group configured at least once, by id."""
    return page_of(bill_groups(book.billing), lambda g: g.group_id, after, limit, bill_group_json)


@router.get("/bill-groups/{group_id}", summary="Get a bill group")
def get_bill_group(book: TenantBook, group_id: str, response: Response) -> Json:
    """404 for a group never configured (its accounts bill with the defaults)."""
    group = configured_bill_group(book.billing, group_id)
    tag(response, group.version)
    return bill_group_json(group)


@router.put("/bill-groups/{group_id}", summary="Configure a bill group")
def put_bill_group(
    book: TenantBook,
    group_id: str,
    settings: BillGroupSettings,
    request: Request,
    response: Response,
) -> Json:
    """Replace the group's settings (those left out take their defaults). With
    If-Match, refused (412) when the group changed since that version."""
    check_if_match(request, book.billing.get_bill_group(group_id).version)
    record = settings.model_dump(mode="json", exclude_unset=True) | {"id": group_id}
    group = configure_bill_group(book.billing, record, "request")
    tag(response, group.version)
    return bill_group_json(group)
