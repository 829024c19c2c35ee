from __future__ import annotations

from fastapi.testclient import TestClient

from entrypoints.http.tenancy import Role
from tests.api.conftest import bearer
from tests.conftest import account, package


def test_an_account_created_over_http_reads_back_as_the_cli_shows_it(api: TestClient) -> None:
    created = api.post("/v1/accounts", json=account("ACME-001", package()))
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == "/v1/accounts/ACME-001"
    got = api.get("/v1/accounts/ACME-001")
    assert got.status_code == 200
    assert got.json() == created.json()
    assert got.headers["ETag"] == f'"{got.json()["version"]}"'


def test_bad_input_is_a_problem_naming_each_field_and_writes_nothing(api: TestClient) -> None:
    refused = api.post("/v1/accounts", json={**account("ACME-001"), "currency": "XXX"})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert [e["path"] for e in refused.json()["errors"]] == ["currency"]
    assert api.get("/v1/accounts/ACME-001").status_code == 404


def test_another_tenants_account_is_not_found(
    api: TestClient, keys: dict[tuple[str, Role], str]
) -> None:
    api.post("/v1/accounts", json=account("ACME-001"))
    other = api.get("/v1/accounts/ACME-001", headers=bearer(keys["globex", Role.ADMIN]))
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"


def test_a_stale_if_match_is_refused_with_412(api: TestClient) -> None:
    version = api.post("/v1/accounts", json=account("ACME-001")).json()["version"]
    changed = api.patch(
        "/v1/accounts/ACME-001", json={"name": "Acme"}, headers={"If-Match": f'"{version}"'}
    )
    assert changed.status_code == 200, changed.text
    stale = api.patch(
        "/v1/accounts/ACME-001", json={"name": "Acme 2"}, headers={"If-Match": f'"{version}"'}
    )
    assert stale.status_code == 412
    assert api.get("/v1/accounts/ACME-001").json()["name"] == "Acme"


def test_idempotency_key_replays_the_first_answer(api: TestClient) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = api.post("/v1/accounts", json=account("ACME-001"), headers=key)
    again = api.post("/v1/accounts", json=account("ACME-001"), headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post("/v1/accounts", json=account("ACME-002"), headers=key)
    assert other.status_code == 422
    assert api.get("/v1/accounts/ACME-002").status_code == 404
