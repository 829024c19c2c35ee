"""The JSON form of each thing billrun shows: what `--json` prints in the CLI and
what the HTTP API answers, built here once (one serializer, not two).

Money is a decimal string, dates and instants ISO 8601, ids as the operator
wrote them (the aggregate's uuid beside, where a program may want it).
"""

from __future__ import annotations

from typing import Any

from domain.billing.account import Account
from domain.shared.ids import account_uuid


def account_json(account: Account) -> dict[str, Any]:
    return {
        "id": account.account_id,
        "aggregate_id": str(account_uuid(account.account_id)),
        "name": account.name,
        "currency": account.currency,
        "invoice_email": account.invoice_email,
        "bill_group": account.bill_group,
        "buyer": account.buyer.model_dump(mode="json"),
        "version": account.version,
        "packages": [
            {
                **p.terms.model_dump(mode="json"),
                "next_bill_date": p.next_bill_date.isoformat(),
                # Passed over by a run whose period began after them: stranded.
                "owed_bill_dates": [p.bill_date_of(i).isoformat() for i in p.owed],
            }
            for p in account.packages.values()
        ],
    }
