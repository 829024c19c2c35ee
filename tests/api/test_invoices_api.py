"""Invoices over HTTP: the list by key with its filters, one invoice with its
ETag, review one by one (If-Match, Idempotency-Key) and in bulk by filter with
refusals listed, credit notes, documents (valid PDF and XML) and history."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

from fastapi.testclient import TestClient

from entrypoints.http.tenancy import Role
from tests.api.conftest import bearer
from tests.api.test_runs_api import billed
from tests.conftest import account, package


def invoices(api: TestClient, **query: Any) -> list[dict[str, Any]]:
    answer = api.get("/v1/invoices", params=query)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_the_list_pages_by_key_to_the_end_with_no_duplicate_or_gap(api: TestClient) -> None:
    billed(api, "ACME-001", "ACME-002", "ACME-003", "ACME-004", "ACME-005")
    seen: list[str] = []
    after = None
    while True:
        page = api.get("/v1/invoices", params={"limit": 2, **({"after": after} if after else {})})
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        after = page.json()["next"]
        if after is None:
            break
        # An invoice opened while paging comes last and moves nothing already listed.
    assert len(seen) == len(set(seen)) == 5
    everything = invoices(api, limit=100)
    assert [item["id"] for item in everything] == seen
    first = everything[0]
    assert first["run_id"] == "2026-01" and first["total"] == "100.00"
    assert first["payment_status"] in ("unpaid", "overdue") and first["lines"]


def test_the_lists_filters_narrow_it(api: TestClient) -> None:
    billed(api, "ACME-001", "ACME-002")
    assert len(invoices(api, run="2026-01")) == 2
    assert [i["account"] for i in invoices(api, account="ACME-002")] == ["ACME-002"]
    assert len(invoices(api, status="draft")) == 2
    assert invoices(api, status="approved") == []
    assert len(invoices(api, document_type="invoice")) == 2
    assert invoices(api, document_type="credit_note") == []
    assert len(invoices(api, posted_from="2026-01-31", posted_to="2026-01-31")) == 2
    assert invoices(api, posted_from="2026-02-01") == []
    assert invoices(api, run="other") == []


def test_bad_filters_and_cursors_are_problems_naming_the_parameter(api: TestClient) -> None:
    for query, where in (
        ({"status": "paidish"}, "query.status"),
        ({"after": "bm90IGEgY3Vyc29y"}, "query.after"),
        ({"limit": 101}, "query.limit"),
        ({"posted_from": "yesterday"}, "query.posted_from"),
        ({"document_type": "receipt"}, "query.document_type"),
    ):
        refused = api.get("/v1/invoices", params=query)
        assert refused.status_code == 422, (query, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["path"] for e in refused.json()["errors"]] == [where]


def test_one_invoice_by_id_or_number_with_its_etag(api: TestClient) -> None:
    billed(api, "ACME-001")
    (listed,) = invoices(api)
    by_id = api.get(f"/v1/invoices/{listed['id']}")
    assert by_id.status_code == 200
    assert by_id.headers["ETag"] == f'"{by_id.json()["version"]}"'
    assert api.get(f"/v1/invoices/{listed['display_number']}").json() == by_id.json()
    assert by_id.json()["total"] == listed["total"] and by_id.json()["lines"]
    assert api.get("/v1/invoices/INV-99999999").status_code == 404


def test_approving_twice_with_one_key_approves_once_and_replays(api: TestClient) -> None:
    billed(api, "ACME-001")
    (listed,) = invoices(api)
    url = f"/v1/invoices/{listed['id']}/approve"
    key = {"Idempotency-Key": "approve-1"}
    first = api.post(url, json={}, headers=key)
    assert first.status_code == 200, first.text
    assert first.json()["changed"] == 1
    again = api.post(url, json={}, headers=key)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    events = api.get(f"/v1/invoices/{listed['id']}/history").text.splitlines()
    assert [json.loads(e)["event"] for e in events].count("InvoiceApproved") == 1
    # Without the key, approving again is the CLI's "already approved": nothing written.
    assert api.post(url, json={}).json()["unchanged"] == 1


def test_review_of_one_invoice_refused_is_a_409_and_a_stale_if_match_a_412(
    api: TestClient,
) -> None:
    billed(api, "ACME-001")
    (listed,) = invoices(api)
    url = f"/v1/invoices/{listed['id']}"
    version = api.get(url).json()["version"]
    no_reason = api.post(f"{url}/quarantine", json={})
    assert no_reason.status_code == 422
    stale = api.post(f"{url}/approve", json={}, headers={"If-Match": f'"{version - 1}"'})
    assert stale.status_code == 412
    assert api.get(url).json()["review_status"] == "draft"
    approved = api.post(f"{url}/approve", json={}, headers={"If-Match": f'"{version}"'})
    assert approved.status_code == 200
    refused = api.post(f"{url}/quarantine", json={"reason": "late"})
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert api.get(url).json()["review_status"] == "approved"


def test_bulk_review_by_filter_says_what_changed_and_lists_refusals(api: TestClient) -> None:
    billed(api, "ACME-001", "ACME-002", "ACME-003")
    first = invoices(api, account="ACME-001")[0]
    api.post(f"/v1/invoices/{first['id']}/approve", json={})
    answer = api.post("/v1/invoices/quarantine", json={"run": "2026-01", "reason": "check VAT"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["changed"], body["refused"], body["unchanged"]) == (2, 1, 0)
    (refusal,) = [i for i in body["invoices"] if i["result"] == "refused"]
    assert refusal["id"] == first["id"] and refusal["reason"]
    assert len(invoices(api, status="quarantined")) == 2
    narrowed = api.post(
        "/v1/invoices/unquarantine",
        json={"run": "2026-01", "status": "quarantined", "account": "ACME-002"},
    ).json()
    assert narrowed["changed"] == 1 and narrowed["refused"] == 0
    both = api.post("/v1/invoices/approve", json={"run": "2026-01", "invoices": [first["id"]]})
    assert both.status_code == 422
    neither = api.post("/v1/invoices/approve", json={"status": "draft"})
    assert neither.status_code == 422
    assert len(invoices(api, status="quarantined")) == 1


def test_a_credit_note_corrects_an_approved_invoice_once(api: TestClient) -> None:
    billed(api, "ACME-001")
    (listed,) = invoices(api)
    api.post(f"/v1/invoices/{listed['id']}/approve", json={})
    url = f"/v1/invoices/{listed['id']}/credit-notes"
    credit = {"amount": "10.00", "reason": "goodwill"}
    issued = api.post(url, json=credit)
    assert issued.status_code == 201, issued.text
    assert issued.json()["created"] is True and issued.json()["amount"] == "10.00"
    note = issued.json()["credit_note"]
    assert issued.headers["Location"] == f"/v1/invoices/{note['id']}"
    again = api.post(url, json=credit)
    assert again.status_code == 200 and again.json()["created"] is False
    assert len(invoices(api, document_type="credit_note")) == 1
    assert api.post(url, json={"full": True, "amount": "1", "reason": "x"}).status_code == 422


def test_documents_render_on_first_access_and_are_valid(api: TestClient) -> None:
    billed(api, "ACME-001")
    (listed,) = invoices(api)
    base = f"/v1/invoices/{listed['id']}/documents"
    pdf = api.get(f"{base}/pdf")
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert listed["display_number"] in pdf.headers["content-disposition"]
    for name in ("ubl", "cii"):
        xml = api.get(f"{base}/{name}")
        assert xml.status_code == 200 and xml.headers["content-type"] == "application/xml"
        ElementTree.fromstring(xml.content)
    assert api.get(f"{base}/facturx").content.startswith(b"%PDF-")
    listed_documents = api.get(base).json()
    assert {d["format"] for d in listed_documents["items"]} == {"pdf", "xml", "cii", "facturx"}
    assert all(d["path"] is None and d["url"].startswith(base) for d in listed_documents["items"])
    # Rendered once: the second download serves the recorded document.
    events = [json.loads(e)["event"] for e in api.get(f"{base[:-10]}/history").text.splitlines()]
    assert events.count("InvoiceRendered") == 4
    assert api.get(f"{base}/pdf").headers["ETag"] == pdf.headers["ETag"]


def test_an_open_invoice_has_no_document(api: TestClient) -> None:
    api.post("/v1/accounts", json=account("ACME-001", package()))
    api.post(
        "/v1/runs",
        json={
            "run_id": "open",
            "period_start": "2026-01-01",
            "period_end": "2026-01-31",
            "settings": {"run_invoices": False, "render_invoices": False},
        },
    )
    api.post("/v1/runs/open/execute")
    (listed,) = invoices(api)
    assert listed["status"] == "open"
    refused = api.get(f"/v1/invoices/{listed['id']}/documents/pdf")
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"


def test_other_tenants_and_roles_never_reach_an_invoice(
    api: TestClient, keys: dict[tuple[str, Role], str]
) -> None:
    billed(api, "ACME-001")
    (listed,) = invoices(api)
    base = f"/v1/invoices/{listed['id']}"
    other = bearer(keys["globex", Role.ADMIN])
    for path in (base, f"{base}/documents/pdf", f"{base}/history", f"{base}/documents"):
        assert api.get(path, headers=other).status_code == 404, path
    assert api.post(f"{base}/approve", json={}, headers=other).status_code == 404
    assert api.get("/v1/invoices", headers=other).json()["items"] == []
    for role in (Role.AUDITOR, Role.SERVICE):
        refused = api.post(f"{base}/approve", json={}, headers=bearer(keys["acme", role]))
        assert refused.status_code == 403
        assert listed["id"] not in refused.json()["detail"]  # only the route's template
    assert api.get(base, headers=bearer(keys["acme", Role.SERVICE])).status_code == 403
    assert api.get(base, headers=bearer(keys["acme", Role.AUDITOR])).status_code == 200
    assert api.get(base).json()["review_status"] == "draft"


def test_audit_verify_and_projections_status(
    api: TestClient, keys: dict[tuple[str, Role], str]
) -> None:
    billed(api, "ACME-001")
    auditor = bearer(keys["acme", Role.AUDITOR])
    verified = api.get("/v1/audit/verify", headers=auditor)
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True and verified.json()["expected_head_matches"] is True
    head, at = verified.json()["head"], verified.json()["head_notification_id"]
    anchored = api.get(
        "/v1/audit/verify",
        params={"expect_head": head, "at": at},
        headers=auditor,
    ).json()
    assert anchored["expected_head_matches"] is True
    wrong = api.get("/v1/audit/verify", params={"expect_head": "0" * 64}, headers=auditor)
    assert wrong.json()["expected_head_matches"] is False
    assert api.get("/v1/audit/verify", params={"at": 3}).status_code == 422
    states = api.get("/v1/projections", headers=auditor).json()["items"]
    assert "invoices" in {state["name"] for state in states}
    assert api.post("/v1/projections/invoices/rebuild", headers=auditor).status_code == 403
    operator = bearer(keys["acme", Role.OPERATOR])
    assert api.post("/v1/projections/invoices/rebuild", headers=operator).status_code == 403
    rebuilt = api.post("/v1/projections/invoices/rebuild")
    assert rebuilt.status_code == 200, rebuilt.text
    assert rebuilt.json()["name"] == "invoices"
    assert len(invoices(api)) == 1
    assert api.post("/v1/projections/nope/rebuild").status_code == 422
