"""Each resource answers what its CLI command prints with --json, and refuses
bad input at the field the request wrote."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import account, package


def test_a_package_added_over_http_bills_like_an_imported_one(api: TestClient) -> None:
    api.post("/v1/accounts", json=account("ACME-001"))
    added = api.post("/v1/accounts/ACME-001/packages", json=package("desk", amount="20.00"))
    assert added.status_code == 201, added.text
    assert [p["package_id"] for p in added.json()["packages"]] == ["desk"]
    refused = api.post("/v1/accounts/ACME-001/packages", json=package("x", amount="1,00"))
    assert refused.status_code == 422
    assert [e["path"] for e in refused.json()["errors"]] == ["amount"]


def test_usage_charges_and_contracts_list_as_the_cli_shows_them(api: TestClient) -> None:
    api.post("/v1/accounts", json=account("ACME-001", package(usage_rate="0.10")))
    usage = {
        "account_id": "ACME-001",
        "usage_id": "u-1",
        "package_id": "office",
        "quantity": "3",
        "occurred_on": "2026-01-05",
    }
    first = api.post("/v1/usage", json=usage).json()
    assert first["recorded"] is True
    assert api.post("/v1/usage", json=usage).json()["recorded"] is False  # a duplicate
    credit = {
        "account_id": "ACME-001",
        "charge_id": "goodwill",
        "description": "Goodwill",
        "amount": "-15.00",
        "charge_date": "2026-01-06",
    }
    assert api.post("/v1/charges", json=credit).status_code == 201
    contract = {
        "account_id": "ACME-001",
        "contract_id": "c-1",
        "start_date": "2026-01-01",
        "term_months": 12,
        "minimum_spend": "1000.00",
    }
    assert api.post("/v1/contracts", json=contract).json()["contract"]["term_end"] == "2026-12-31"
    usage_items = api.get("/v1/accounts/ACME-001/usage").json()["items"]
    assert [(u["usage_id"], u["billed"]) for u in usage_items] == [("u-1", False)]
    charges = api.get("/v1/accounts/ACME-001/charges").json()["items"]
    assert [(c["charge_id"], c["amount"]) for c in charges] == [("goodwill", "-15.00")]
    contracts = api.get("/v1/accounts/ACME-001/contracts").json()["items"]
    assert [c["contract_id"] for c in contracts] == ["c-1"]


def test_a_bill_group_is_404_until_configured_then_guarded_by_if_match(api: TestClient) -> None:
    assert api.get("/v1/bill-groups/monthly").status_code == 404
    put = api.put("/v1/bill-groups/monthly", json={"delivery": "none"})
    assert put.status_code == 200, put.text
    etag = put.headers["ETag"]
    assert api.get("/v1/bill-groups/monthly").json()["delivery"] == "none"
    changed = api.put(
        "/v1/bill-groups/monthly", json={"delivery": "file"}, headers={"If-Match": etag}
    )
    assert changed.status_code == 200
    stale = api.put(
        "/v1/bill-groups/monthly", json={"delivery": "email"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412
    assert [g["id"] for g in api.get("/v1/bill-groups").json()["items"]] == ["monthly"]


def test_payments_settle_the_balance_read_back_from_the_read_model(api: TestClient) -> None:
    api.post("/v1/accounts", json=account("ACME-001"))
    payment = {
        "account_id": "ACME-001",
        "payment_id": "p-1",
        "amount": "40.00",
        "received_on": "2026-01-20",
    }
    recorded = api.post("/v1/payments", json=payment)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["payment"]["amount"] == "40.00"
    balance = api.get("/v1/accounts/ACME-001/balance", params={"as_of": "2026-01-31"}).json()
    assert balance["balance"] == "-40.00"  # in credit
    payments = api.get("/v1/accounts/ACME-001/payments").json()["items"]
    assert [p["payment_id"] for p in payments] == ["p-1"]
    assert api.get("/v1/aging", params={"as_of": "2026-01-31"}).status_code == 200


def test_schedules_and_rates_round_trip(api: TestClient) -> None:
    schedule = {
        "name": "monthly",
        "terms": {
            "recurrence": "monthly",
            "at": "2026-02-01T06:00:00+00:00",
            "day_of_month": 1,
            "period": "previous_month",
        },
    }
    created = api.post("/v1/schedules", json=schedule)
    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    assert api.post("/v1/schedules", json=schedule).json()["created"] is False
    assert [s["name"] for s in api.get("/v1/schedules").json()["items"]] == ["monthly"]
    assert api.delete("/v1/schedules/monthly").json()["removed_at"] is not None
    rate = {"base": "EUR", "quote": "USD", "rate": "1.0842", "date": "2026-01-01"}
    assert api.post("/v1/exchange-rates", json=rate).json()["recorded"] is True
    rates = api.get("/v1/exchange-rates").json()["rates"]
    assert {"pair": "EUR/USD", "effective_date": "2026-01-01", "rate": "1.0842"} in rates


def test_an_account_suspended_by_hand_stays_so_until_reactivated(api: TestClient) -> None:
    api.post("/v1/accounts", json=account("ACME-001"))
    reason = {"reason": "fraud check"}
    assert api.post("/v1/accounts/ACME-001/suspend", json=reason).json() == {
        "account": "ACME-001",
        "suspended": True,
        "changed": True,
    }
    assert api.post("/v1/accounts/ACME-001/suspend", json=reason).json()["changed"] is False
    payment = {
        "account_id": "ACME-001",
        "payment_id": "p-1",
        "amount": "40.00",
        "received_on": "2026-01-20",
    }
    api.post("/v1/payments", json=payment)
    balance = api.get("/v1/accounts/ACME-001/balance").json()
    assert balance["suspended"] is True
    assert balance["suspended_reason"] == "fraud check"
    lifted = api.post("/v1/accounts/ACME-001/reactivate", json={"reason": "cleared"})
    assert lifted.json()["suspended"] is False
    assert api.get("/v1/accounts/ACME-001/balance").json()["suspended"] is False
