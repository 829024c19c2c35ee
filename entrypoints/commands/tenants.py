"""`billrun tenant ...` and `billrun apikey ...`: the billing books one deployment
keeps apart, and the keys that open them over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from entrypoints import output
from entrypoints.common import JsonFlag, UsageError, refusals
from infrastructure.database import database_url
from infrastructure.settings import Settings
from infrastructure.tenancy import ControlStore, Role, TenantNameRefused, check_tenant_name

tenant_app = typer.Typer(
    help="Tenants: isolated billing books (a PostgreSQL schema, read models, invoice "
    "numbers and NATS namespace each) in one deployment.",
    no_args_is_help=True,
)
apikey_app = typer.Typer(
    help="API keys: one tenant and one role each (admin, operator, auditor, service); "
    "stored hashed, shown once.",
    no_args_is_help=True,
)


@contextlib.contextmanager
def control() -> Iterator[ControlStore]:
    """The control schema (tenants, keys) of the configured database."""
    with database_url(Settings.from_environment()) as url, ControlStore(url, max_size=1) as store:
        yield store


def _tenant_name(name: str, where: str) -> str:
    try:
        return check_tenant_name(name, where)
    except TenantNameRefused as refused:
        raise UsageError(str(refused)) from None


@tenant_app.command("create")
@refusals
def tenant_create(
    name: Annotated[str, typer.Argument(help="1-20 lower-case letters, digits or '_'.")],
    json_out: JsonFlag = False,
) -> None:
    """Create a tenant: its own schema `tenant_<name>`, NATS prefix `<prefix>-<name>`
    and source `<source>.<name>`. Refused (exit 2, nothing changed) when it exists.

    Then: `billrun --tenant NAME import accounts.json` (or BILLRUN_TENANT=NAME).
    """
    with control() as store:
        tenant = store.create_tenant(_tenant_name(name, "NAME"))
    if json_out:
        output.print_json(tenant.as_json())
        return
    output.console.print(f"tenant {tenant.name} created (schema {tenant.schema})", highlight=False)


@tenant_app.command("list")
@refusals
def tenant_list(json_out: JsonFlag = False) -> None:
    """Every tenant, the default one (the `public` schema) first among equals."""
    with control() as store:
        tenants = store.tenants()
    if json_out:
        output.print_json([t.as_json() for t in tenants])
        return
    table = output.compact_table("Tenants")
    table.add_column("tenant", no_wrap=True)
    table.add_column("schema", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    for t in tenants:
        table.add_row(t.name, t.schema, f"{t.created_at:%Y-%m-%d %H:%M}")
    output.print_table(table)


RoleOption = Annotated[
    Role,
    typer.Option(
        case_sensitive=False,
        help="admin: everything; operator: runs, review, payments; auditor: reads, "
        "history, audit verify, no writes; service: accounts, usage, charges.",
    ),
]


@apikey_app.command("create")
@refusals
def apikey_create(
    tenant: Annotated[str, typer.Option(help="The tenant the key opens (only that one).")],
    role: RoleOption,
    name: Annotated[str | None, typer.Option(help="A label: who or what uses it.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create an API key and print it, once: only its SHA-256 is stored, so a lost
    key cannot be shown again (revoke it and create another).

    The key reads `brk_<key id>_<secret>`; send it as `Authorization: Bearer <key>`.
    """
    with control() as store:
        record, raw = store.create_key(_tenant_name(tenant, "--tenant"), role, name)
    if json_out:
        output.print_json({**record.as_json(), "key": raw})
        return
    output.console.print(raw, highlight=False, soft_wrap=True)
    output.errors.print(
        f"key {record.key_id} ({record.role}, tenant {record.tenant}): shown this once; "
        "store it now",
        highlight=False,
    )


@apikey_app.command("list")
@refusals
def apikey_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """API keys (never their secrets): id, tenant, role, label, created, revoked."""
    with control() as store:
        keys = store.keys(None if tenant is None else _tenant_name(tenant, "--tenant"))
    if json_out:
        output.print_json([k.as_json() for k in keys])
        return
    table = output.compact_table("API keys")
    for header in ("key id", "tenant", "role", "name", "created", "revoked"):
        table.add_column(header, no_wrap=header != "name")
    for k in keys:
        table.add_row(
            k.key_id, k.tenant, str(k.role), k.name or "",
            f"{k.created_at:%Y-%m-%d}" if k.created_at else "",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )  # fmt: skip
    output.print_table(table, droppable=("created",))


@apikey_app.command("revoke")
@refusals
def apikey_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`apikey list`).")],
    json_out: JsonFlag = False,
) -> None:
    """Revoke a key: the next request with it is refused. Revoking it again changes
    nothing."""
    with control() as store:
        record = store.revoke_key(key_id)
    if json_out:
        output.print_json(record.as_json())
        return
    output.console.print(f"key {record.key_id} revoked at {record.revoked_at}", highlight=False)
