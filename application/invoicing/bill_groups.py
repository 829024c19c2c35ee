"""Bill groups one at a time (the HTTP API's configure, get and list), through
the import's own checks and writes: a group configured over HTTP is exactly a
group imported from a file of one `bill_groups` record."""

from __future__ import annotations

from typing import Any

import orjson

from application.billing.import_document import parse_import
from application.billing.importing import import_accounts
from application.shared.app import Billing
from application.shared.errors import ApplicationError, InvalidInput
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.events import BillGroupConfigured
from infrastructure.topics import topic_of

BILL_GROUP_CONFIGURED = topic_of(BillGroupConfigured)


class BillGroupNotConfigured(ApplicationError):
    def __init__(self, group_id: str) -> None:
        super().__init__(
            f"bill group {group_id!r} was never configured (its accounts bill with the defaults)"
        )
        self.group_id = group_id


def configured_bill_group(billing: Billing, group_id: str) -> BillGroup:
    """The group's settings, refused for a group never configured."""
    group = billing.get_bill_group(group_id)
    if group.version == 0:
        raise BillGroupNotConfigured(group_id)
    return group


def configure_bill_group(billing: Billing, record: dict[str, Any], source: str) -> BillGroup:
    """Configure the group `record` describes (an import file's bill group record);
    the same settings again change nothing."""
    try:
        document = parse_import(orjson.dumps({"bill_groups": [record]}), source)
        import_accounts(billing, document, source)
    except InvalidInput as refused:  # located in the record, as the request wrote it
        raise refused.within("bill_groups[0]") from None
    return billing.get_bill_group(str(record["id"]))


def bill_groups(billing: Billing) -> list[BillGroup]:
    """Every group configured at least once, by id."""
    found = billing.load_many(BillGroup, billing.queries.originators(BILL_GROUP_CONFIGURED))
    return sorted(found.values(), key=lambda group: group.group_id)
