"""Fixtures of the HTTP API's tests: two tenants of one real database (each its
own schema), and a real key of every role in each, as `billrun apikey create`
makes them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from entrypoints.http.app import create_app
from entrypoints.http.tenancy import Role, StoredKeys
from infrastructure.settings import Settings
from infrastructure.tenancy import ControlStore

TENANTS = ("acme", "globex")


@pytest.fixture
def keys(database_url: str) -> dict[tuple[str, Role], str]:
    """(tenant, role) -> the raw key."""
    made = {}
    with ControlStore(database_url, max_size=1) as control:
        for tenant in TENANTS:
            control.create_tenant(tenant)
            for role in Role:
                _, raw = control.create_key(tenant, role, f"{tenant} {role.value}")
                made[tenant, role] = raw
    return made


@pytest.fixture
def authority(database_url: str, tmp_path: Path) -> StoredKeys:
    settings = Settings.from_environment({"BILLRUN_HOME": str(tmp_path)})
    return StoredKeys(settings, database_url)


@pytest.fixture
def api(authority: StoredKeys, keys: dict[tuple[str, Role], str]) -> Iterator[TestClient]:
    """A client of tenant acme's admin key."""
    with TestClient(create_app(authority)) as client:
        client.headers["Authorization"] = f"Bearer {keys['acme', Role.ADMIN]}"
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class LiveServer:
    url: str
    keys: dict[tuple[str, Role], str]

    def client(self, tenant: str = "acme", role: Role = Role.ADMIN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=bearer(self.keys[tenant, role]), timeout=30)


@pytest.fixture
def live_server(authority: StoredKeys, keys: dict[tuple[str, Role], str]) -> Iterator[LiveServer]:
    """The API under uvicorn on a free port, in a thread of this process."""
    with serving(create_app(authority)) as url:
        yield LiveServer(url, keys)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """`app` under uvicorn on a free port, in a thread of this process: its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
