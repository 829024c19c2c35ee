"""Keys, roles and tenants as the API sees them.

An `Authority` answers three questions for the API: whose key is this
(`authenticate`), where does a tenant's book live (`settings_for`) and how a
write records who made it (`acting_as`). `billrun serve` uses the one backed by
the stored tenants and keys; tests may build their own over real databases.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from infrastructure.settings import Settings


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key of one tenant, with one role."""

    tenant: str
    key_id: str
    role: Role


class Authority(Protocol):
    def authenticate(self, raw_key: str) -> Principal | None:
        """The key's principal; None for a key that is unknown or revoked."""

    def settings_for(self, tenant: str) -> Settings:
        """The settings of the tenant's own book (its schema, its NATS namespace)."""

    def acting_as(self, principal: Principal) -> AbstractContextManager[object]:
        """While inside, every event saved records `principal` as its actor."""


class NoKeys:
    """An authority that knows no key: the application built only for its
    OpenAPI document (`python -m entrypoints.docs`)."""

    def authenticate(self, raw_key: str) -> Principal | None:
        return None

    def settings_for(self, tenant: str) -> Settings:
        raise LookupError(tenant)

    def acting_as(self, principal: Principal) -> AbstractContextManager[object]:
        from contextlib import nullcontext

        return nullcontext()
