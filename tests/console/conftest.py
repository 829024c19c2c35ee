"""Fixtures of the console's browser tests: the API's live server and keys
(tests/api/conftest.py), a tenant with accounts to bill, and Debian's Chromium
driven by Playwright (it cannot download a browser of its own here)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from entrypoints.console import install
from entrypoints.http.app import create_app
from entrypoints.http.tenancy import Role, StoredKeys
from tests.api.conftest import (  # noqa: F401 (fixtures)
    LiveServer,
    authority,
    keys,
    serving,
)
from tests.conftest import account, package

CHROMIUM = os.environ.get("BILLRUN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ACCOUNTS = 6


# Package scope, not session: Playwright's sync API keeps an event loop running in
# the main thread while it is started, and every later `asyncio.run()` (the NATS
# tests) would refuse to start under it.
@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def console_server(
    authority: StoredKeys,  # noqa: F811
    keys: dict[tuple[str, Role], str],  # noqa: F811
) -> Iterator[LiveServer]:
    """The API and the console, as `billrun serve` serves them."""
    app = create_app(authority)
    install(app)
    with serving(app) as url:
        yield LiveServer(url, keys)


@pytest.fixture
def billed_tenant(console_server: LiveServer) -> LiveServer:
    """Tenant acme with accounts on a monthly package, opened over the API."""
    live_server = console_server
    with live_server.client() as client:
        for n in range(1, ACCOUNTS + 1):
            created = client.post("/v1/accounts", json=account(f"ACME-{n:03}", package()))
            assert created.status_code == 201, created.text
    return live_server
