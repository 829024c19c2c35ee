"""Tenant names and what they derive, API key format and checking, and the actor
the mapper records beside an event's state (and strips again)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

import pytest

from domain.runs.events import RunLeaseReleased, RunScheduled
from domain.runs.settings import Selection
from infrastructure.persistence import ACTOR_KEY, OrjsonTranscoder, PydanticMapper
from infrastructure.relay.encoder import Encoder
from infrastructure.settings import ConfigurationError, Settings
from infrastructure.tenancy import (
    Principal,
    Role,
    acting_as,
    command_line_principal,
    current_principal,
    tenant_settings,
)
from infrastructure.tenancy.keys import hash_secret, issue_key, secret_matches, split_key
from infrastructure.tenancy.names import TenantNameRefused, check_tenant_name, tenant_schema

ENV = {"BILLRUN_DATABASE_URL": "postgresql://db.example:5432/billing"}


def test_the_default_tenant_is_the_book_kept_before_tenants_existed() -> None:
    settings = Settings.from_environment(ENV)
    assert settings.tenant == "default"
    assert settings.postgres_schema == ""
    assert settings.nats_prefix == "billing"
    assert settings.source.startswith("db-")


def test_a_tenant_gets_its_own_schema_nats_prefix_and_source() -> None:
    deployment = Settings.from_environment(ENV)
    acme = tenant_settings(deployment, "acme")
    assert acme.tenant == "acme"
    assert acme.postgres_schema == "tenant_acme"
    assert acme.nats_prefix == "billing-acme"
    assert acme.source == f"{deployment.source}.acme"
    assert Settings.from_environment({**ENV, "BILLRUN_TENANT": "acme"}) == acme


def test_pointing_one_tenant_s_settings_at_another_derives_from_the_deployment() -> None:
    deployment = Settings.from_environment(ENV)
    beta = tenant_settings(tenant_settings(deployment, "acme"), "beta")
    assert beta == tenant_settings(deployment, "beta")
    assert tenant_settings(beta, "default") == deployment


@pytest.mark.parametrize("name", ["", "Acme", "1acme", "acme-eu", "a.b", "x" * 21, "acme eu"])
def test_a_tenant_name_that_is_not_one_token_is_refused_with_the_rule(name: str) -> None:
    with pytest.raises(TenantNameRefused, match="1-20 lower-case letters"):
        check_tenant_name(name)
    with pytest.raises(ConfigurationError, match="BILLRUN_TENANT"):
        Settings.from_environment({**ENV, "BILLRUN_TENANT": name} if name else ENV | {
            "BILLRUN_TENANT": "-"
        })  # fmt: skip


def test_a_tenant_whose_nats_prefix_would_be_too_long_is_refused() -> None:
    settings = Settings.from_environment({**ENV, "BILLRUN_NATS_PREFIX": "a" * 20})
    with pytest.raises(ConfigurationError, match="longer than 32"):
        settings.for_tenant("b" * 12)


def test_tenant_schemas_never_collide_with_the_default_one() -> None:
    assert tenant_schema("default") == ""
    assert tenant_schema("public") == "tenant_public"


def test_an_issued_key_splits_into_its_id_and_a_secret_whose_hash_is_stored() -> None:
    issued = issue_key()
    parts = split_key(issued.raw)
    assert parts is not None
    key_id, secret = parts
    assert key_id == issued.key_id
    assert issued.raw == f"brk_{key_id}_{secret}"
    assert issued.secret_hash == hash_secret(secret)
    assert secret not in issued.secret_hash.hex()
    assert secret_matches(secret, issued.secret_hash)


def test_a_wrong_secret_or_no_stored_hash_does_not_match() -> None:
    issued = issue_key()
    other = split_key(issue_key().raw)
    assert other is not None
    assert not secret_matches(other[1], issued.secret_hash)
    assert not secret_matches("no such key", None)  # the dummy hash never matches


@pytest.mark.parametrize(
    "raw", ["", "brk_", "brk_123_abc", "Bearer brk_x", "sk_0123456789ab_" + "a" * 43]
)
def test_a_malformed_key_splits_to_nothing(raw: str) -> None:
    assert split_key(raw) is None


EVENT = RunLeaseReleased(
    originator_id=UUID("00000000-0000-4000-8000-000000000001"),
    originator_version=2,
    timestamp=datetime(2026, 4, 1, tzinfo=UTC),
    holder="manager-1",
)


def test_an_event_written_while_acting_as_a_key_records_its_actor_and_reads_back_without() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    event = EVENT
    principal = Principal(tenant="acme", key_id="0123456789ab", role=Role.SERVICE, name="crm")
    with acting_as(principal):
        stored = mapper.to_stored_event(event)
    assert current_principal() is None
    state = mapper.decode_state(stored.state)
    assert state[ACTOR_KEY] == {"key_id": "0123456789ab", "role": "service", "name": "crm"}
    assert mapper.to_domain_event(stored) == event


def test_an_event_written_outside_acting_as_has_no_actor_as_in_old_logs() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    stored = mapper.to_stored_event(EVENT)
    assert ACTOR_KEY not in mapper.decode_state(stored.state)
    assert mapper.to_domain_event(stored) == EVENT


def test_the_command_line_acts_as_cli_and_the_os_user() -> None:
    principal = command_line_principal("acme")
    assert (principal.tenant, principal.key_id, principal.role) == ("acme", "cli", Role.ADMIN)
    assert command_line_principal("acme", "worker").key_id == "worker"


def test_the_actor_never_goes_on_the_wire_the_public_message_is_the_same() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    scheduled = RunScheduled(
        originator_id=UUID("00000000-0000-4000-8000-000000000002"),
        originator_version=1,
        timestamp=datetime(2026, 4, 1, tzinfo=UTC),
        run_id="2026-03",
        period_start=date(2026, 3, 1),
        period_end=date(2026, 3, 31),
        posting_date=date(2026, 3, 31),
        selection=Selection(),
    )
    plain = mapper.to_stored_event(scheduled)
    with acting_as(Principal("acme", "0123456789ab", Role.OPERATOR, "ops")):
        attributed = mapper.to_stored_event(scheduled)
    assert plain.state != attributed.state

    def encoded(state: bytes) -> tuple[bytes, dict[str, str]]:
        row = (7, str(scheduled.originator_id), 1, plain.topic, state)
        message = Encoder("billing-acme", "db-0.acme").encode(row)
        assert message is not None
        return message.body, message.headers

    assert encoded(attributed.state) == encoded(plain.state)
    assert b"0123456789ab" not in encoded(attributed.state)[0]
