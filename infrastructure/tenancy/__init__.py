"""Tenants, API keys, roles and "who did it".

A tenant is an isolated billing book: its own PostgreSQL schema (events, read
models, sequences), NATS prefix and message source, all derived from its name
(`names`). The registry of tenants and the API keys live in a control schema
shared by all (`control`). `acting_as` makes every event written inside it
record its actor (`actor`).

The public interface the HTTP API codes against:

    Role, Principal
    authenticate(settings, raw_key) -> Principal | None
    tenant_settings(settings, tenant) -> Settings
    acting_as(principal) -> context manager
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infrastructure.tenancy.actor import (
    Principal,
    Role,
    acting_as,
    command_line_principal,
    current_principal,
)
from infrastructure.tenancy.control import (
    ControlStore,
    KeyRecord,
    TenancyError,
    Tenant,
    TenantExists,
    UnknownKey,
    UnknownTenant,
    control_store,
)
from infrastructure.tenancy.names import DEFAULT_TENANT, TenantNameRefused, check_tenant_name

if TYPE_CHECKING:  # settings import tenancy.names: no import at run time, no circle
    from infrastructure.settings import Settings

__all__ = [
    "DEFAULT_TENANT",
    "ControlStore",
    "KeyRecord",
    "Principal",
    "Role",
    "TenancyError",
    "Tenant",
    "TenantExists",
    "TenantNameRefused",
    "UnknownKey",
    "UnknownTenant",
    "acting_as",
    "authenticate",
    "check_tenant_name",
    "command_line_principal",
    "control_store",
    "current_principal",
    "tenant_settings",
]


def authenticate(settings: Settings, raw_key: str) -> Principal | None:
    """The principal of `raw_key` (a `brk_<id>_<secret>` key), None when it is
    malformed, unknown, revoked or its secret is wrong; the secret is compared in
    constant time.

    `settings.database_url` must be set: a server on the embedded PostgreSQL
    resolves it first (`infrastructure.database.database_url`, then
    `dataclasses.replace(settings, database_url=url)`).
    """
    if settings.database_url is None:
        from infrastructure.settings import ConfigurationError

        raise ConfigurationError(
            "authenticate: no database URL (resolve the embedded server's URL first)"
        )
    return control_store(settings.database_url).authenticate(raw_key)


def tenant_settings(settings: Settings, tenant: str) -> Settings:
    """`settings` pointed at `tenant`'s book: its schema, NATS prefix and source,
    derived from the deployment's (whatever tenant `settings` pointed at before).

    Only names: whether the tenant exists is `ControlStore.require_tenant`'s
    question (the runtime asks it when it opens).
    """
    return settings.for_tenant(tenant)
