"""Schemathesis against the live server: for every operation of the OpenAPI
document, generated requests (a bounded number each) never get a 5xx, and every
response matches the document (status, content type, headers, schema).

The key is an admin's of a tenant with one account (ACME-001), so generated
requests reach the routes' own validation and application services.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from entrypoints.http.tenancy import Role
from tests.api.conftest import LiveServer
from tests.conftest import account, package

EXAMPLES_PER_OPERATION = 10


@pytest.fixture
def seeded(live_server: LiveServer) -> LiveServer:
    with live_server.client() as client:
        client.post("/v1/accounts", json=account("ACME-001", package(usage_rate="0.10")))
    return live_server


# The committed document (tests/unit checks it is current); the live server
# answers the same one at /openapi.json.
schema = schemathesis.openapi.from_path(str(Path(__file__).parents[2] / "docs/openapi.json"))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_no_5xx_and_answers_match_the_document(
    case: schemathesis.Case, seeded: LiveServer
) -> None:
    case.call_and_validate(
        base_url=seeded.url,
        headers={"Authorization": f"Bearer {seeded.keys['acme', Role.ADMIN]}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
