"""Keys, roles and tenants as the API sees them (`infrastructure.tenancy`).

An `Authority` answers three questions for the API: whose key is this
(`authenticate`), where does a tenant's book live (`settings_for`) and how a
write records who made it (`acting_as`). `billrun serve` uses `StoredKeys`, the
tenants and hashed keys of the control schema (`billrun tenant`, `billrun
apikey`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Protocol

from infrastructure import tenancy
from infrastructure.settings import Settings
from infrastructure.tenancy import Principal, Role

__all__ = ["Authority", "NoKeys", "Principal", "Role", "StoredKeys"]


class Authority(Protocol):
    def authenticate(self, raw_key: str) -> Principal | None:
        """The key's principal; None for a key that is unknown or revoked."""

    def settings_for(self, tenant: str) -> Settings:
        """The settings of the tenant's own book (its schema, its NATS namespace)."""

    def acting_as(self, principal: Principal) -> AbstractContextManager[object]:
        """While inside, every event saved records `principal` as its actor."""


class StoredKeys:
    """The control schema's tenants and keys, on the server's database."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = replace(settings, database_url=database_url)

    def authenticate(self, raw_key: str) -> Principal | None:
        return tenancy.authenticate(self.settings, raw_key)

    def settings_for(self, tenant: str) -> Settings:
        return tenancy.tenant_settings(self.settings, tenant)

    def acting_as(self, principal: Principal) -> AbstractContextManager[object]:
        return tenancy.acting_as(principal)


class NoKeys:
    """An authority that knows no key: the application built only for its
    OpenAPI document (`python -m entrypoints.docs`)."""

    def authenticate(self, raw_key: str) -> Principal | None:
        return None

    def settings_for(self, tenant: str) -> Settings:
        raise LookupError(tenant)

    def acting_as(self, principal: Principal) -> AbstractContextManager[object]:
        return nullcontext()
