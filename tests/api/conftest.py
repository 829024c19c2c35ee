"""Fixtures of the HTTP API's tests: two tenants of one real database (each its
own schema), and a real key of every role in each, as `billrun apikey create`
makes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
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
