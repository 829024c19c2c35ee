"""The public event contract on a real NATS server: every public event type, as
published, validates against the committed AsyncAPI document with a real JSON
Schema validator; two deployments share one server without losing or consuming
each other's events; a second deployment on the same prefix is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from nats.aio.msg import Msg

from application.shared.app import Billing
from entrypoints.runtime import Runtime
from entrypoints.worker import run_worker
from infrastructure.contract import PUBLIC_FORMS
from infrastructure.database import create_database, drop_database
from infrastructure.messaging import StreamNames
from infrastructure.persistence import eventsourcing_environment
from infrastructure.relay import NotificationLog, Relay, RelayError, RelayPositions
from infrastructure.settings import Settings, derived_source
from tests.conftest import SteppingClock
from tests.golden.event_log import load_event_log
from tests.integration.helpers import REPO_ROOT
from tests.integration.test_consumers import ACCOUNTS, bill, event_count

ASYNCAPI = json.loads((REPO_ROOT / "docs" / "asyncapi.json").read_text())


def validator(schema_ref: dict[str, Any]) -> Draft202012Validator:
    """A validator of one schema of the AsyncAPI document, its `$ref`s resolved
    against the whole document."""
    return Draft202012Validator(
        {**schema_ref, "components": ASYNCAPI["components"]}, format_checker=FormatChecker()
    )


def relay_all(billing: Billing, url: str, names: StreamNames) -> None:
    source = NotificationLog(billing.recorder)  # type: ignore[arg-type]
    positions = RelayPositions(source.datastore)
    positions.create_table()
    asyncio.run(Relay(source, positions, url, names, window=500).run())


async def read_all(url: str, stream: str, subjects: str) -> list[Msg]:
    nc = await nats.connect(url)
    try:
        sub = await nc.jetstream().pull_subscribe(subjects, stream=stream)
        received: list[Msg] = []
        while True:
            try:
                batch = await sub.fetch(500, timeout=1)
            except TimeoutError:
                return received
            received.extend(batch)
    finally:
        await nc.close()


async def delete_streams(url: str, *names: StreamNames) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for n in names:
        for stream in (n.stream, n.dead_letter_stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
    await nc.close()


def public_count(billing: Billing) -> int:
    rows = billing.queries.notification_rows(1, billing.queries.head(), 100_000)
    return sum(1 for row in rows if row[3].rpartition(":")[2] in PUBLIC_FORMS)


def test_every_public_event_type_as_published_validates_against_the_asyncapi_document(
    billing: Billing, database_url: str, nats_server: str, streams: StreamNames
) -> None:
    # The committed old log holds every public event type at least once.
    load_event_log(database_url)
    relay_all(billing, nats_server, streams)
    messages = asyncio.run(read_all(nats_server, streams.stream, f"{streams.subject_prefix}.>"))

    assert len(messages) == public_count(billing)
    seen: set[str] = set()
    channels = {
        ch["address"].replace("{prefix}", streams.subject_prefix): ch
        for ch in ASYNCAPI["channels"].values()
    }
    for msg in messages:
        channel = channels[msg.subject]
        (ref,) = channel["messages"].values()
        message = ASYNCAPI["components"]["messages"][ref["$ref"].rpartition("/")[2]]
        headers = dict(msg.headers or {})
        validator(message["headers"]).validate(headers)
        validator(message["payload"]).validate(json.loads(msg.data))
        seen.add(headers["ce-type"])
    assert seen == {form.ce_type for form in PUBLIC_FORMS.values()}, "every public type"


def test_the_schemas_refuse_what_the_contract_forbids() -> None:
    closed = ASYNCAPI["components"]["messages"]["InvoiceClosedV1"]
    body = {
        "invoice_id": "d3e32db6-cb79-5589-a872-f88d442fe6fe", "document_type": "invoice",
        "number": "INV-00000001", "account_id": "A-1", "run_id": "2026-01",
        "currency": "EUR", "subtotal": "100.00", "tax": "19.00", "total": "119.00",
        "line_count": 1, "posting_date": "2026-01-31", "due_date": None, "released": True,
        "a_field_added_later": "is allowed",
    }  # fmt: skip
    payload = validator(closed["payload"])
    assert payload.is_valid(body)
    for bad in ({"total": 119}, {"total": "abc"}, {"total": "1E+2"}, {"currency": None}):
        assert not payload.is_valid({**body, **bad}), bad
    assert "correlationId" not in json.dumps(ASYNCAPI)


# Two deployments on one NATS server -------------------------------------------------


@pytest.fixture
def second_database(postgres_server: str) -> Iterator[str]:
    url = create_database(postgres_server)
    try:
        yield url
    finally:
        drop_database(url)


def deployment(database_url: str, nats_url: str, home: Path, prefix: str) -> Runtime:
    env = eventsourcing_environment(database_url)
    settings = Settings(
        database_url=database_url, nats_url=nats_url, home=home, batch_size=100,
        nats_prefix=prefix, source=derived_source(database_url, home),
    )  # fmt: skip
    return Runtime(settings, env, Billing(env, clock=SteppingClock()))


def test_two_deployments_on_one_server_lose_nothing_and_never_consume_each_others_work(
    database_url: str, second_database: str, nats_server: str, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    a = deployment(database_url, nats_server, tmp_path / "a", f"t{tag}a")
    b = deployment(second_database, nats_server, tmp_path / "b", f"t{tag}b")
    names = [StreamNames.for_prefix(rt.settings.nats_prefix, rt.settings.source) for rt in (a, b)]
    try:
        # The same notification ids in both logs: what was dropped as duplicates before.
        for rt in (a, b):
            bill(rt.billing)
        assert a.billing.queries.head() == b.billing.queries.head()

        def done() -> bool:
            return all(event_count(rt.billing, "InvoiceDelivered") == ACCOUNTS for rt in (a, b))

        async def both_workers() -> None:
            stop = asyncio.Event()
            workers = [asyncio.create_task(run_worker(rt, nats_server, stop)) for rt in (a, b)]
            try:
                for _ in range(300):
                    if await asyncio.to_thread(done) or any(w.done() for w in workers):
                        break
                    await asyncio.sleep(0.2)
            finally:
                stop.set()
                await asyncio.gather(*workers)

        asyncio.run(both_workers())

        for rt, n in zip((a, b), names, strict=True):
            assert event_count(rt.billing, "InvoiceRendered") == 2 * ACCOUNTS
            assert event_count(rt.billing, "InvoiceDelivered") == ACCOUNTS
            published = asyncio.run(read_all(nats_server, n.stream, f"{n.subject_prefix}.>"))
            dead = asyncio.run(
                read_all(nats_server, n.dead_letter_stream, f"{n.dead_letter_prefix}.>")
            )
            # Everything up to the workers' own InvoiceRendered/Delivered that the
            # relay had published when it stopped; each public event once.
            ids = [m.headers["ce-id"] for m in published if m.headers]
            assert len(ids) == len(set(ids)) >= public_count_before_worker(rt)
            assert {m.headers["ce-source"] for m in published if m.headers} == {
                f"/billrun/{rt.settings.source}"
            }
            assert dead == [], "no consumer took the other deployment's messages"
        assert names[0].durable_prefix != names[1].durable_prefix
    finally:
        for rt in (a, b):
            rt.billing.close()
        asyncio.run(delete_streams(nats_server, *names))


def public_count_before_worker(rt: Runtime) -> int:
    """Public events of the bill run itself (the worker adds rendered/delivered)."""
    rows = rt.billing.queries.notification_rows(1, rt.billing.queries.head(), 100_000)
    skip = {"InvoiceRendered", "InvoiceDelivered"}
    return sum(
        1 for row in rows if (e := row[3].rpartition(":")[2]) in PUBLIC_FORMS and e not in skip
    )


def test_the_same_prefix_with_another_source_is_refused_before_publishing(
    billing: Billing, nats_server: str, streams: StreamNames
) -> None:
    relay_all(billing, nats_server, streams)  # the stream now records its source
    bill(billing)
    intruder = StreamNames(**{**streams.__dict__, "source": "another-deployment"})
    source = NotificationLog(billing.recorder)  # type: ignore[arg-type]
    positions = RelayPositions(source.datastore, table="relay_position_intruder")
    positions.create_table()

    with pytest.raises(RelayError, match=r"belongs to deployment billrun.*BILLRUN_NATS_PREFIX"):
        asyncio.run(Relay(source, positions, nats_server, intruder).run())
    assert positions.get(streams.stream)[0] == 0, "nothing published, position unmoved"
