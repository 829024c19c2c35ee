"""Bill runs over HTTP: each route answers what its CLI command's --json prints,
refuses bad input writing nothing, hides other tenants' runs and refuses roles
the table does not name."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from entrypoints.http.tenancy import Role
from tests.api.conftest import bearer
from tests.conftest import account, package

QUIET = {"render_invoices": False, "deliver_invoices": False}
"""No seller is configured in tests: runs that render would be refused by their check."""


def a_run(run_id: str = "2026-01", **settings: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "period_start": "2026-01-01",
        "period_end": "2026-01-31",
        "settings": {**QUIET, **settings},
    }


def billed(api: TestClient, *accounts: str) -> dict[str, Any]:
    """Accounts opened, a run scheduled and executed over HTTP; the execution's answer."""
    for account_id in accounts or ("ACME-001", "ACME-002"):
        assert api.post("/v1/accounts", json=account(account_id, package())).status_code == 201
    assert api.post("/v1/runs", json=a_run()).status_code == 202
    executed = api.post("/v1/runs/2026-01/execute")
    assert executed.status_code == 200, executed.text
    answer: dict[str, Any] = executed.json()
    return answer


def test_scheduling_answers_202_with_the_runs_url_and_the_run(api: TestClient) -> None:
    api.post("/v1/accounts", json=account("ACME-001", package()))
    scheduled = api.post("/v1/runs", json=a_run())
    assert scheduled.status_code == 202, scheduled.text
    assert scheduled.headers["Location"] == "/v1/runs/2026-01"
    body = scheduled.json()
    assert body["created"] is True
    assert body["status"] == "scheduled" and body["period_end"] == "2026-01-31"
    again = api.post("/v1/runs", json=a_run())
    assert again.status_code == 202 and again.json()["created"] is False
    status = api.get(scheduled.headers["Location"]).json()
    assert status["run_id"] == "2026-01" and status["workflow_state"] == "scheduled"
    assert [row["run_id"] for row in api.get("/v1/runs").json()["items"]] == ["2026-01"]


def test_a_bad_run_is_refused_naming_each_field_and_schedules_nothing(api: TestClient) -> None:
    refused = api.post(
        "/v1/runs",
        json={**a_run(), "period_end": "not a date", "settings": {"bill_usage": "maybe"}},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    paths = {e["path"] for e in refused.json()["errors"]}
    assert {"period_end", "settings.bill_usage"} <= paths
    backwards = api.post("/v1/runs", json={**a_run(), "period_start": "2026-02-01"})
    assert backwards.status_code == 422, backwards.text
    assert api.get("/v1/runs").json()["items"] == []
    assert api.get("/v1/runs/2026-01").status_code == 404


def test_execute_check_report_statistics_and_status_with_steps(api: TestClient) -> None:
    executed = billed(api)
    assert executed["already_completed"] is False
    assert executed["statistics"]["invoices"] == 2
    assert executed["totals"]["EUR"]["net"] == "200.00"
    status = api.get("/v1/runs/2026-01").json()
    assert status["status"] == "completed"
    assert [step["step"] for step in status["step_log"]][:2]
    check = api.get("/v1/runs/2026-01/check")
    assert check.status_code == 200 and set(check.json()) == {"run_id", "errors", "warnings"}
    report = api.get("/v1/runs/2026-01/report").json()
    assert report["accounts"]["billed"] == 2 and report["status"] == "completed"
    statistics = api.get("/v1/runs/2026-01/statistics").json()
    assert statistics["run_id"] == "2026-01" and statistics["accounts_billed"] == 2
    again = api.post("/v1/runs/2026-01/execute").json()
    assert again["already_completed"] is True
    assert again["statistics"]["invoices"] == 2


def test_preview_disable_enable_process_and_cancel(api: TestClient) -> None:
    api.post("/v1/accounts", json=account("ACME-001", package()))
    api.post("/v1/runs", json={**a_run(), "disabled": True})
    preview = api.post("/v1/runs/2026-01/preview")
    assert preview.status_code == 200 and preview.json()["invoices"] == 1
    assert api.post("/v1/runs/2026-01/disable").json() == {
        "run_id": "2026-01",
        "disabled": True,
        "changed": False,
    }
    assert api.post("/v1/runs/2026-01/enable").json()["changed"] is True
    processed = api.post("/v1/runs/2026-01/process").json()
    assert processed == {"run_id": "2026-01", "from": "scheduled", "to": "drafts_ready"}
    no_reason = api.post("/v1/runs/2026-01/cancel", json={"mode": "reopen", "reason": " "})
    assert no_reason.status_code == 422
    assert api.get("/v1/runs/2026-01").json()["status"] == "completed"
    cancelled = api.post("/v1/runs/2026-01/cancel", json={"mode": "reopen", "reason": "wrong"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["invoices_cancelled"] == 1
    assert cancelled.json()["accounts_reopened"] == 1


def test_retrying_an_account_the_run_did_not_park_is_refused(api: TestClient) -> None:
    billed(api, "ACME-001")
    refused = api.post("/v1/runs/2026-01/retry", json={"account": "ACME-001"})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"


def test_a_description_is_set_once_and_shown_in_the_status(api: TestClient) -> None:
    billed(api, "ACME-001")
    said = {"description": "  January, key accounts "}
    first = api.post("/v1/runs/2026-01/description", json=said)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "run_id": "2026-01",
        "description": "January, key accounts",
        "changed": True,
    }
    again = api.post("/v1/runs/2026-01/description", json=said)
    assert again.json()["changed"] is False  # the same text writes nothing
    assert api.get("/v1/runs/2026-01").json()["description"] == "January, key accounts"
    too_long = api.post("/v1/runs/2026-01/description", json={"description": "x" * 501})
    assert too_long.status_code == 422
    assert "description" in too_long.text


def test_another_tenants_run_is_not_found_and_auditors_only_read(
    api: TestClient, keys: dict[tuple[str, Role], str]
) -> None:
    billed(api, "ACME-001")
    other = bearer(keys["globex", Role.ADMIN])
    for path in ("/v1/runs/2026-01", "/v1/runs/2026-01/report", "/v1/runs/2026-01/history"):
        assert api.get(path, headers=other).status_code == 404, path
    assert api.post("/v1/runs/2026-01/disable", headers=other).status_code == 404
    assert api.get("/v1/runs", headers=other).json()["items"] == []
    auditor = bearer(keys["acme", Role.AUDITOR])
    assert api.get("/v1/runs/2026-01", headers=auditor).status_code == 200
    refused = api.post("/v1/runs/2026-01/disable", headers=auditor)
    assert refused.status_code == 403
    assert "2026-01" not in refused.json()["detail"].replace("{run_id}", "")
    assert (
        api.post(
            "/v1/runs", json=a_run("x"), headers=bearer(keys["acme", Role.SERVICE])
        ).status_code
        == 403
    )
    assert api.get("/v1/runs/2026-01").json()["disabled"] is False


def test_a_runs_history_streams_the_lines_the_cli_exports(api: TestClient) -> None:
    billed(api, "ACME-001")
    streamed = api.get("/v1/runs/2026-01/history")
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert lines[0]["event"] == "RunScheduled"
    assert lines[0]["actor"]["role"] == "admin"
    assert {"InvoiceClosed", "PackageBilled"} <= {line["event"] for line in lines}
    numbers = [line["notification_id"] for line in lines]
    assert numbers == sorted(numbers)
    account_lines = api.get("/v1/accounts/ACME-001/history").text.splitlines()
    assert json.loads(account_lines[0])["event"] == "AccountOpened"
    assert api.get("/v1/accounts/NOPE/history").status_code == 404


def test_an_idempotency_key_replays_a_schedule(api: TestClient) -> None:
    api.post("/v1/accounts", json=account("ACME-001", package()))
    key = {"Idempotency-Key": "sched-1"}
    first = api.post("/v1/runs", json=a_run(), headers=key)
    again = api.post("/v1/runs", json=a_run(), headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.json()["created"] is True
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == "/v1/runs/2026-01"
