"""Every route of the OpenAPI document, called with a key of every role of the
tenant that owns the data and of another tenant: the role table decides who may
call it (403 for the others, before anything is read), and another tenant's key
never sees, changes or learns of the owner's objects (404, or a list without them).

Walks the committed document, so routes added later are walked too; a route
without a sample body below is called with `{}` (refused as input, but past the
key and the role: that is what this test checks).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from entrypoints.http.security import ROUTE_ROLES
from entrypoints.http.tenancy import Role
from tests.api.conftest import bearer
from tests.conftest import account, package

OWNER, OTHER = "acme", "globex"
ACCOUNT = "ACME-001"

PATH_VALUES = {
    "account_id": ACCOUNT,
    "run_id": "2026-01",
    "invoice_id": "INV-00000001",
    "document_format": "pdf",
    "name": "monthly",
    "projection": "invoices",
    "group_id": "monthly",
}
OWNED = ("{account_id}", "{run_id}", "{invoice_id}")
"""Path parameters naming the owner's objects: another tenant's key gets 404."""
SAMPLES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/accounts"): account("ACME-NEW"),
    ("PATCH", "/v1/accounts/{account_id}"): {"name": "Renamed"},
    ("PUT", "/v1/accounts/{account_id}/terms"): {"net_days": 14},
    ("PUT", "/v1/accounts/{account_id}/autopay"): {"token": "tok_approved_visa"},
    ("PUT", "/v1/accounts/{account_id}/invoicer"): {"invoicer": None},
    ("POST", "/v1/usage"): {
        "account_id": ACCOUNT,
        "usage_id": "u-1",
        "package_id": "office",
        "quantity": "3",
        "occurred_on": "2026-01-05",
        "unit_price": "0.10",
    },
    ("POST", "/v1/charges"): {
        "account_id": ACCOUNT,
        "charge_id": "c-1",
        "description": "Setup",
        "amount": "25.00",
        "charge_date": "2026-01-05",
    },
    ("POST", "/v1/payments"): {
        "account_id": ACCOUNT,
        "payment_id": "p-1",
        "amount": "10.00",
        "received_on": "2026-01-20",
    },
}
SAMPLES[("POST", "/v1/schedules")] = {
    "name": "monthly",
    "terms": {
        "recurrence": "monthly",
        "at": "2026-02-01T06:00:00+00:00",
        "day_of_month": 1,
        "period": "previous_month",
    },
}
SAMPLES[("POST", "/v1/exchange-rates")] = {
    "base": "EUR",
    "quote": "USD",
    "rate": "1.0842",
    "date": "2026-01-01",
}
SAMPLES[("POST", "/v1/accounts/{account_id}/packages")] = package("desk", amount="20.00")
SAMPLES[("POST", "/v1/contracts")] = {
    "account_id": ACCOUNT,
    "contract_id": "c-1",
    "start_date": "2026-01-01",
    "term_months": 12,
    "minimum_spend": "1000.00",
}
SAMPLES[("PUT", "/v1/bill-groups/{group_id}")] = {"delivery": "none", "zero_invoices": False}
SAMPLES[("POST", "/v1/accounts/{account_id}/suspend")] = {"reason": "fraud check"}
SAMPLES[("POST", "/v1/accounts/{account_id}/reactivate")] = {"reason": "cleared"}
SAMPLES[("POST", "/v1/usage/batches")] = {"records": [SAMPLES[("POST", "/v1/usage")]]}
SAMPLES[("POST", "/v1/runs")] = {
    "run_id": "2026-02",
    "period_start": "2026-02-01",
    "period_end": "2026-02-28",
    "settings": {"render_invoices": False, "deliver_invoices": False},
}
SAMPLES[("POST", "/v1/runs/{run_id}/cancel")] = {"mode": "reopen", "reason": "walked"}
SAMPLES[("POST", "/v1/runs/{run_id}/retry")] = {"account": ACCOUNT}
SAMPLES[("POST", "/v1/runs/{run_id}/description")] = {"description": "January, walked"}
SAMPLES[("POST", "/v1/invoices/{invoice_id}/credit-notes")] = {"full": True, "reason": "walked"}


def seed(api: TestClient) -> str:
    """The owner's account, billed by run 2026-01 (invoice INV-00000001); its uuid."""
    created = api.post("/v1/accounts", json=account(ACCOUNT, package(usage_rate="0.10")))
    january = {"run_id": "2026-01", "period_start": "2026-01-01", "period_end": "2026-01-31"}
    api.post("/v1/runs", json={**SAMPLES[("POST", "/v1/runs")], **january})
    assert api.post("/v1/runs/2026-01/execute").status_code == 200
    aggregate_id: str = created.json()["aggregate_id"]
    return aggregate_id


def routes(api: TestClient) -> list[tuple[str, str]]:
    document = api.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    ]


def url_of(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)


def call(api: TestClient, method: str, path: str, key: str) -> Any:
    body = SAMPLES.get((method, path), {}) if method != "GET" else None
    return api.request(method, url_of(path), json=body, headers=bearer(key))


def test_the_role_table_names_exactly_the_routes_of_the_document(api: TestClient) -> None:
    assert sorted(routes(api)) == sorted(ROUTE_ROLES)


def test_every_route_answers_each_role_as_the_table_says(
    api: TestClient, keys: dict[tuple[str, Role], str]
) -> None:
    seed(api)
    api.post("/v1/schedules", json=SAMPLES["POST", "/v1/schedules"])
    for method, path in routes(api):
        for role in Role:
            answer = call(api, method, path, keys[OWNER, role])
            allowed = role in ROUTE_ROLES[method, path]
            where = f"{method} {path} as {role.value}: {answer.status_code} {answer.text[:200]}"
            if allowed:
                assert answer.status_code not in (401, 403), where
                assert answer.status_code < 500, where
            else:
                assert answer.status_code == 403, where
                assert answer.headers["content-type"] == "application/problem+json"


def test_another_tenants_keys_never_reach_the_owners_objects(
    api: TestClient, keys: dict[tuple[str, Role], str]
) -> None:
    secret = seed(api)
    api.post("/v1/schedules", json=SAMPLES["POST", "/v1/schedules"])
    api.put("/v1/bill-groups/monthly", json=SAMPLES["PUT", "/v1/bill-groups/{group_id}"])
    before = api.get(f"/v1/accounts/{ACCOUNT}").json()
    invoice_before = api.get("/v1/invoices/INV-00000001").json()
    # Reads first: the other tenant's writes below may create objects of the same
    # names in its own book, which it may then read.
    walk = sorted(routes(api), key=lambda route: route[0] != "GET")
    for method, path in walk:
        for role in Role:
            if role not in ROUTE_ROLES[method, path]:
                continue
            answer = call(api, method, path, keys[OTHER, role])
            where = f"{method} {path} as {OTHER} {role.value}: {answer.status_code}"
            assert answer.status_code < 500, where
            if method == "GET" and re.search(r"\{\w+\}", path):
                assert answer.status_code == 404, where
            if any(owned in path for owned in OWNED):  # never created in the other book
                assert answer.status_code == 404, where
            assert secret not in answer.text, where
    # Nothing the other tenant sent changed the owner's account.
    assert api.get(f"/v1/accounts/{ACCOUNT}").json() == before
    assert api.get(f"/v1/accounts/{ACCOUNT}/usage").json()["items"] == []
    assert api.get("/v1/invoices/INV-00000001").json() == invoice_before
    assert api.get("/v1/runs/2026-01").json()["status"] == "completed"


def test_no_key_or_a_wrong_key_is_401_on_every_route(api: TestClient) -> None:
    for method, path in routes(api):
        for headers in ({"Authorization": ""}, bearer("brk_nope_nope")):
            answer = api.request(method, url_of(path), json={}, headers=headers)
            assert answer.status_code == 401, f"{method} {path}"
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
