"""The control schema against a real PostgreSQL: tenants registered once, API keys
created, listed without secrets, revoked, and checked in constant time."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from infrastructure.settings import Settings
from infrastructure.tenancy import (
    ControlStore,
    Role,
    TenantExists,
    TenantNameRefused,
    UnknownKey,
    UnknownTenant,
    authenticate,
    control_store,
)


@pytest.fixture
def control(database_url: str) -> Iterator[ControlStore]:
    with ControlStore(database_url) as store:
        yield store


def test_a_tenant_is_created_once_with_its_own_schema(
    control: ControlStore, database_url: str
) -> None:
    created = control.create_tenant("acme")
    assert (created.name, created.schema) == ("acme", "tenant_acme")
    with pytest.raises(TenantExists, match="'acme' exists already: nothing was changed"):
        control.create_tenant("acme")
    with pytest.raises(TenantExists):
        control.create_tenant("default")
    assert [t.name for t in control.tenants()] == ["acme", "default"]
    with psycopg.connect(database_url) as conn:
        schemas = {
            r[0] for r in conn.execute("SELECT schema_name FROM information_schema.schemata")
        }
    assert {"tenant_acme", "billrun_control"} <= schemas


def test_a_bad_tenant_name_is_refused_before_anything_is_written(control: ControlStore) -> None:
    with pytest.raises(TenantNameRefused):
        control.create_tenant("Acme; DROP SCHEMA public")
    assert [t.name for t in control.tenants()] == ["default"]


def test_a_key_authenticates_as_its_tenant_and_role_until_revoked(
    control: ControlStore, database_url: str
) -> None:
    control.create_tenant("acme")
    record, raw = control.create_key("acme", Role.OPERATOR, "ops")
    principal = control.authenticate(raw)
    assert principal is not None
    assert (principal.tenant, principal.key_id, principal.role, principal.name) == (
        "acme", record.key_id, Role.OPERATOR, "ops"
    )  # fmt: skip
    settings = Settings.from_environment({"BILLRUN_DATABASE_URL": database_url})
    assert authenticate(settings, raw) == principal

    revoked = control.revoke_key(record.key_id)
    assert revoked.revoked_at is not None
    assert control.authenticate(raw) is None
    assert authenticate(settings, raw) is None
    again = control.revoke_key(record.key_id)  # changes nothing
    assert again.revoked_at == revoked.revoked_at
    control_store(database_url).close()


def test_the_right_key_id_with_a_wrong_secret_does_not_authenticate(
    control: ControlStore,
) -> None:
    _, raw = control.create_key("default", Role.ADMIN)
    _, other = control.create_key("default", Role.ADMIN)
    key_id = raw.split("_")[1]
    other_secret = other[len("brk_000000000000_") :]
    assert control.authenticate(f"brk_{key_id}_{other_secret}") is None
    assert control.authenticate(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    assert control.authenticate("brk_000000000000_" + "a" * 43) is None
    assert control.authenticate("not a key") is None


def test_keys_are_listed_without_their_secrets(control: ControlStore) -> None:
    control.create_tenant("acme")
    record, raw = control.create_key("acme", Role.AUDITOR, "auditor-1")
    control.create_key("default", Role.SERVICE)
    listed = control.keys()
    assert [k.tenant for k in listed] == ["acme", "default"]
    assert [k.key_id for k in control.keys("acme")] == [record.key_id]
    secret = raw[len("brk_000000000000_") :]
    assert all(secret not in str(k.as_json()) for k in listed)


def test_a_key_for_a_tenant_never_created_is_refused(control: ControlStore) -> None:
    with pytest.raises(UnknownTenant, match="billrun tenant create nope"):
        control.create_key("nope", Role.ADMIN)
    with pytest.raises(UnknownKey):
        control.revoke_key("0123456789ab")
