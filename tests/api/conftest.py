"""Fixtures of the HTTP API's tests: two tenants, each in its own real database,
and a key of every role in each."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from entrypoints.http.app import create_app
from entrypoints.http.tenancy import Principal, Role
from infrastructure.database import create_database, drop_database
from infrastructure.settings import Settings

TENANTS = ("acme", "globex")


def key_of(tenant: str, role: Role) -> str:
    return f"test-{tenant}-{role.value}"


@dataclass
class TestAuthority:
    """Tenants in databases of their own; keys named after their tenant and role."""

    settings: dict[str, Settings]

    def authenticate(self, raw_key: str) -> Principal | None:
        for tenant in self.settings:
            for role in Role:
                if raw_key == key_of(tenant, role):
                    return Principal(tenant, f"{tenant}-{role.value}", role)
        return None

    def settings_for(self, tenant: str) -> Settings:
        return self.settings[tenant]

    def acting_as(self, principal: Principal) -> AbstractContextManager[object]:
        return nullcontext()


@pytest.fixture
def authority(postgres_server: str, tmp_path: Path) -> Iterator[TestAuthority]:
    urls = {tenant: create_database(postgres_server) for tenant in TENANTS}
    base = Settings.from_environment({"BILLRUN_HOME": str(tmp_path)})
    try:
        yield TestAuthority({t: replace(base, database_url=url) for t, url in urls.items()})
    finally:
        for url in urls.values():
            drop_database(url)


@pytest.fixture
def api(authority: TestAuthority) -> Iterator[TestClient]:
    """A client of tenant acme's admin key."""
    with TestClient(create_app(authority)) as client:
        client.headers["Authorization"] = f"Bearer {key_of('acme', Role.ADMIN)}"
        yield client


def as_key(tenant: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {key_of(tenant, role)}"}
