"""The API's conventions against a live server: one effect per Idempotency-Key
under a race, pages that neither repeat nor skip while writes go on, limits."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import LiveServer
from tests.conftest import account, package

CHARGE = {
    "account_id": "ACME-001",
    "charge_id": "setup",
    "description": "Setup",
    "amount": "25.00",
    "charge_date": "2026-01-05",
}


def test_concurrent_requests_with_one_key_have_one_effect_and_one_answer(
    live_server: LiveServer,
) -> None:
    with live_server.client() as client:
        assert client.post("/v1/accounts", json=account("ACME-001")).status_code == 201
    start = threading.Barrier(8)

    def send(_: int) -> Any:
        with live_server.client() as client:
            start.wait()
            return client.post(
                "/v1/charges",
                json=CHARGE,
                headers={"Idempotency-Key": "race-1"},
            )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 7
    with live_server.client() as client:
        charges = client.get("/v1/accounts/ACME-001/charges").json()["items"]
        version = client.get("/v1/accounts/ACME-001").json()["version"]
    assert [c["charge_id"] for c in charges] == ["setup"]
    assert version == 2  # opened, one charge added: one effect


def test_concurrent_requests_with_other_keys_still_record_a_usage_id_once(
    live_server: LiveServer,
) -> None:
    with live_server.client() as client:
        client.post("/v1/accounts", json=account("ACME-001", package(usage_rate="0.10")))
    usage = {
        "account_id": "ACME-001",
        "usage_id": "u-1",
        "package_id": "office",
        "quantity": "3",
        "occurred_on": "2026-01-05",
    }
    start = threading.Barrier(4)

    def send(index: int) -> Any:
        with live_server.client() as client:
            start.wait()
            return client.post("/v1/usage", json=usage, headers={"Idempotency-Key": f"k{index}"})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(4)))
    assert all(a.status_code in (201, 409) for a in answers), [a.text for a in answers]
    with live_server.client() as client:
        assert len(client.get("/v1/accounts/ACME-001/usage").json()["items"]) == 1


def test_paging_to_the_end_while_accounts_are_opened_lists_each_once(
    live_server: LiveServer,
) -> None:
    with live_server.client() as client:
        for index in range(45):
            client.post("/v1/accounts", json=account(f"A-{index:03}"))
    stop = threading.Event()

    def write() -> None:
        with live_server.client() as client:
            index = 0
            while not stop.is_set():
                client.post("/v1/accounts", json=account(f"B-{index:03}"))
                index += 1

    writer = threading.Thread(target=write)
    writer.start()
    seen: list[str] = []
    try:
        with live_server.client() as client:
            after = None
            while True:
                params: dict[str, Any] = {"limit": 10}
                if after is not None:
                    params["after"] = after
                page = client.get("/v1/accounts", params=params).json()
                seen += [item["id"] for item in page["items"]]
                after = page["next"]
                if after is None:
                    break
    finally:
        stop.set()
        writer.join()
    assert len(seen) == len(set(seen))
    assert seen[:45] == [f"A-{index:03}" for index in range(45)]


def test_limits_are_refused_with_problems_that_say_which(api: TestClient) -> None:
    too_many = api.get("/v1/accounts", params={"limit": 101})
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["path"] == "query.limit"
    record = {
        "account_id": "X",
        "usage_id": "u",
        "package_id": "p",
        "quantity": "1",
        "occurred_on": "2026-01-01",
    }
    batch = api.post("/v1/usage/batches", json={"records": [record] * 1001})
    assert batch.status_code == 422
    assert batch.json()["errors"][0]["path"] == "records"
    huge = api.post(
        "/v1/usage/batches",
        content=b'{"records": [' + b" " * (2 * 1024 * 1024) + b"]}",
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.headers["content-type"] == "application/problem+json"
    cursor = api.get("/v1/accounts", params={"after": "%%%"})
    assert cursor.status_code == 422


def test_a_batch_refused_names_each_record_and_writes_nothing(api: TestClient) -> None:
    api.post("/v1/accounts", json=account("ACME-001", package(usage_rate="0.10")))
    good = {
        "account_id": "ACME-001",
        "usage_id": "u-1",
        "package_id": "office",
        "quantity": "3",
        "occurred_on": "2026-01-05",
    }
    refused = api.post(
        "/v1/usage/batches",
        json={"records": [good, {**good, "usage_id": "u-2", "package_id": "nope"}]},
    )
    assert refused.status_code == 422
    assert [e["path"] for e in refused.json()["errors"]] == ["records[1]"]
    assert api.get("/v1/accounts/ACME-001/usage").json()["items"] == []
