"""Tenant names, and what each tenant's name gives it: a PostgreSQL schema, a NATS
subject prefix and a message source of its own.

Kept free of the rest of billrun (settings import it), so the derivation is
written once and every process (CLI, worker, HTTP server) derives the same names.
"""

from __future__ import annotations

import re

DEFAULT_TENANT = "default"
"""The book billrun kept before tenants existed: the `public` schema, the
deployment's own NATS prefix and source. Its data is never moved."""

TENANT_NAME = re.compile(r"[a-z][a-z0-9_]{0,19}")
"""Lower-case letter, then up to 19 letters, digits or `_`: a PostgreSQL
identifier that needs no quoting and one NATS subject token, short enough that
`<prefix>-<tenant>` fits the 32 characters a prefix may have."""

TENANT_SCHEMA_PREFIX = "tenant_"
CONTROL_SCHEMA = "billrun_control"
"""The schema shared by all tenants: the tenant registry and the API keys."""


class TenantNameRefused(ValueError):
    """A tenant name billrun cannot use, with the rule it breaks."""


def check_tenant_name(name: str, where: str = "tenant") -> str:
    """`name` if it is a usable tenant name; otherwise a clear refusal naming `where`."""
    if not TENANT_NAME.fullmatch(name):
        raise TenantNameRefused(
            f"{where}: {name!r} is not a tenant name: use 1-20 lower-case letters, digits "
            "or '_', starting with a letter (e.g. acme or acme_eu)"
        )
    return name


def tenant_schema(tenant: str) -> str:
    """The PostgreSQL schema of `tenant`'s events, read models and sequences;
    "" (the library's default, `public`) for the default tenant."""
    return "" if tenant == DEFAULT_TENANT else TENANT_SCHEMA_PREFIX + check_tenant_name(tenant)


def tenant_nats_prefix(deployment_prefix: str, tenant: str) -> str:
    """`<prefix>-<tenant>`: its own stream, dead-letter stream and durables."""
    if tenant == DEFAULT_TENANT:
        return deployment_prefix
    return f"{deployment_prefix}-{check_tenant_name(tenant)}"


def tenant_source(deployment_source: str, tenant: str) -> str:
    """`<source>.<tenant>`: message ids of two tenants never collide."""
    if tenant == DEFAULT_TENANT:
        return deployment_source
    return f"{deployment_source}.{check_tenant_name(tenant)}"
