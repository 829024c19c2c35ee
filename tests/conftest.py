"""Shared fixtures.

Integration and end-to-end tests run against a real PostgreSQL: the server named
by BILLRUN_TEST_DATABASE_URL (or BILLRUN_DATABASE_URL) when set, otherwise an
embedded one started once for the session. Each test gets its own throwaway
database, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from application.billing import importing
from application.billing.import_document import parse_import
from application.shared.app import Billing
from entrypoints.cli import prepare_process
from infrastructure.database import create_database, drop_database
from infrastructure.persistence import eventsourcing_environment

# The test session is a process that renders invoices in-process (the renderer's
# byte-for-byte tests), so it starts the way `billrun` does.
prepare_process()

TEST_SELLER = {
    "BILLRUN_SELLER_NAME": "Test Seller SA",
    "BILLRUN_SELLER_IBAN": "BE68 5390 0754 7034",
    "BILLRUN_SELLER_EMAIL": "billing@seller.test",
}
"""A seller of its own, as every deployment sets one, for tests that run the
`billrun` executable: runs refuse to render invoices under the built-in demo
seller outside `billrun demo`."""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = os.environ.get("BILLRUN_TEST_DATABASE_URL") or os.environ.get("BILLRUN_DATABASE_URL")
    if url:
        yield url
        return
    from infrastructure.embedded import embedded_postgres

    # Not under pytest's own temporary root: pytest makes that directory 0700
    # again whenever a pytest session starts, and run as root the embedded
    # server runs as `nobody`, which would then lose its data directory.
    home = Path(tempfile.mkdtemp(prefix="billrun-test-postgres-"))
    try:
        with embedded_postgres(home) as embedded_url:
            yield embedded_url
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def database_url(postgres_server: str) -> Iterator[str]:
    url = create_database(postgres_server)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def es_env(database_url: str) -> dict[str, str]:
    return eventsourcing_environment(database_url)


class SteppingClock:
    """A clock that moves one millisecond per reading, from a fixed start."""

    def __init__(self, start: datetime = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def billing(es_env: dict[str, str], clock: SteppingClock) -> Iterator[Billing]:
    app = Billing(es_env, clock=clock)
    try:
        yield app
    finally:
        app.close()


def account(
    account_id: str,
    *packages: dict[str, Any],
    currency: str = "EUR",
    bill_group: str = "monthly",
    email: str | None = "ap@example.test",
) -> dict[str, Any]:
    """An import-file account record, for tests that state their scenario as data."""
    return {
        "id": account_id,
        "name": f"{account_id} Ltd",
        "currency": currency,
        "invoice_email": email,
        "bill_group": bill_group,
        "packages": list(packages),
    }


def package(
    package_id: str = "office",
    amount: str = "100.00",
    frequency: str = "monthly",
    timing: str = "advance",
    start_date: str = "2026-01-01",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": package_id,
        "description": package_id.title(),
        "amount": amount,
        "frequency": frequency,
        "timing": timing,
        "start_date": start_date,
        **extra,
    }


def import_accounts(app: Billing, *accounts: dict[str, Any]) -> None:
    document = {"accounts": list(accounts)}
    importing.import_accounts(
        app, parse_import(json.dumps(document).encode(), "test.json"), "test.json"
    )


def write_import_file(directory: Path, *accounts: dict[str, Any]) -> Path:
    path = directory / "accounts.json"
    path.write_text(json.dumps({"accounts": list(accounts)}))
    return path
