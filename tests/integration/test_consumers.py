"""The worker end to end, against real PostgreSQL and real NATS JetStream: the
relay publishes, the render and deliver consumers react, and nothing is done
twice or lost, including when messages are redelivered or poisonous."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from datetime import date
from pathlib import Path

import nats
import nats.js.errors
import pytest

from application.billing import importing
from application.billing.import_document import parse_import
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.runs.settings import RunSettings, Selection
from domain.shared.periods import Period
from entrypoints.runtime import Runtime
from entrypoints.worker import run_worker
from infrastructure.messaging import StreamNames
from infrastructure.settings import Settings
from tests.conftest import account, import_accounts, package

ACCOUNTS = 6


@pytest.fixture
def runtime(
    billing: Billing, es_env: dict[str, str], database_url: str, nats_server: str, tmp_path: Path
) -> Runtime:
    settings = Settings(
        database_url=database_url, nats_url=nats_server, home=tmp_path, batch_size=100
    )
    return Runtime(settings, es_env, billing)


def bill(billing: Billing, run_id: str = "2026-01", settings: RunSettings | None = None) -> None:
    import_accounts(
        billing,
        *(account(f"ACC-{i}", package(amount="120.00")) for i in range(ACCOUNTS)),
    )
    schedule_run(
        billing, run_id, Period(date(2026, 1, 1), date(2026, 1, 31)), None, Selection(), settings
    )
    BillRunExecutor(billing, batch_size=4).execute(run_id)


def event_count(billing: Billing, event: str) -> int:
    with billing.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        curs.execute(
            "SELECT count(*) AS n FROM billing_events WHERE topic LIKE %s", (f"%:{event}",)
        )
        row = curs.fetchone()
        return int(row["n"])


async def work_until(
    runtime: Runtime, url: str, names: StreamNames, condition: object, timeout: float = 60
) -> None:
    """Run the worker until `condition()` holds (polled), then stop it gracefully."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(runtime, url, stop, names))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await asyncio.to_thread(condition):  # type: ignore[arg-type]
            if worker.done() or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await worker


def test_the_worker_renders_and_delivers_every_invoice_of_a_run_exactly_once(
    runtime: Runtime, billing: Billing, nats_server: str, streams: StreamNames, tmp_path: Path
) -> None:
    bill(billing)

    def all_delivered() -> bool:
        return event_count(billing, "InvoiceDelivered") == ACCOUNTS

    asyncio.run(work_until(runtime, nats_server, streams, all_delivered))

    assert event_count(billing, "InvoiceRendered") == 2 * ACCOUNTS  # PDF and XML
    assert event_count(billing, "InvoiceDelivered") == ACCOUNTS
    emails = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(emails) == ACCOUNTS
    pdfs = list((tmp_path / "documents").rglob("*.pdf"))
    assert len(pdfs) == ACCOUNTS
    assert all(pdf.read_bytes().startswith(b"%PDF") for pdf in pdfs)
    # The worker keeps the audit seal up to date as it goes.
    assert runtime.read_side.audit_seal().head().count > 0

    # A second worker over the same log finds everything done: nothing new at all.
    asyncio.run(work_until(runtime, nats_server, streams, lambda: False, timeout=3))
    assert event_count(billing, "InvoiceRendered") == 2 * ACCOUNTS
    assert event_count(billing, "InvoiceDelivered") == ACCOUNTS
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == ACCOUNTS


def test_a_run_without_delivery_is_rendered_but_not_delivered(
    runtime: Runtime, billing: Billing, nats_server: str, streams: StreamNames, tmp_path: Path
) -> None:
    bill(billing, settings=RunSettings(render_invoices=True, deliver_invoices=False))

    asyncio.run(
        work_until(
            runtime,
            nats_server,
            streams,
            lambda: event_count(billing, "InvoiceRendered") == 2 * ACCOUNTS,
        )
    )
    assert event_count(billing, "InvoiceRendered") == 2 * ACCOUNTS
    assert event_count(billing, "InvoiceDelivered") == 0
    assert not list((tmp_path / "outbox").glob("*.eml"))


def test_a_redelivered_invoice_closed_renders_nothing_new(
    runtime: Runtime, billing: Billing, nats_server: str, streams: StreamNames
) -> None:
    bill(billing)
    asyncio.run(
        work_until(
            runtime,
            nats_server,
            streams,
            lambda: event_count(billing, "InvoiceDelivered") == ACCOUNTS,
        )
    )

    async def republish_every_invoice_closed() -> int:
        nc = await nats.connect(nats_server)
        js = nc.jetstream()
        sub = await js.subscribe(
            f"{streams.subject_prefix}.invoice.InvoiceClosed", ordered_consumer=True
        )
        copies = 0
        with contextlib.suppress(nats.errors.TimeoutError):
            while copies < ACCOUNTS:
                msg = await sub.next_msg(timeout=2)
                headers = {"Nats-Msg-Id": f"copy-{secrets.token_hex(6)}"}
                await js.publish(msg.subject, msg.data, headers=headers, stream=streams.stream)
                copies += 1
        await nc.close()
        return copies

    assert asyncio.run(republish_every_invoice_closed()) == ACCOUNTS
    asyncio.run(work_until(runtime, nats_server, streams, lambda: False, timeout=4))

    assert event_count(billing, "InvoiceRendered") == 2 * ACCOUNTS
    assert event_count(billing, "InvoiceDelivered") == ACCOUNTS


def test_a_poison_message_lands_in_the_dead_letter_stream_and_blocks_nothing(
    runtime: Runtime, billing: Billing, nats_server: str, streams: StreamNames
) -> None:
    async def publish_poison() -> None:
        nc = await nats.connect(nats_server)
        js = nc.jetstream()
        from infrastructure.messaging import ensure_streams

        await ensure_streams(js, streams)
        await js.publish(
            f"{streams.subject_prefix}.invoice.InvoiceClosed",
            b'{"not": "an invoice"}',
            headers={"Nats-Msg-Id": "poison-1"},
            stream=streams.stream,
        )
        await nc.close()

    asyncio.run(publish_poison())
    bill(billing)
    asyncio.run(
        work_until(
            runtime,
            nats_server,
            streams,
            lambda: event_count(billing, "InvoiceDelivered") == ACCOUNTS,
        )
    )
    assert event_count(billing, "InvoiceDelivered") == ACCOUNTS

    async def dead_letters() -> list[nats.aio.msg.Msg]:
        nc = await nats.connect(nats_server)
        js = nc.jetstream()
        sub = await js.subscribe(f"{streams.dead_letter_prefix}.>", ordered_consumer=True)
        found = []
        with contextlib.suppress(nats.errors.TimeoutError):
            while True:
                found.append(await sub.next_msg(timeout=2))
        await nc.close()
        return found

    letters = asyncio.run(dead_letters())
    assert len(letters) == 1
    letter = letters[0]
    assert json.loads(letter.data) == {"not": "an invoice"}
    assert (
        letter.subject
        == f"{streams.dead_letter_prefix}.{streams.subject_prefix}.invoice.InvoiceClosed"
    )
    assert letter.headers is not None
    assert "ValidationError" in letter.headers["Billrun-Dead-Letter-Reason"]
    assert letter.headers["Billrun-Dead-Letter-Consumer"] == "render"
    assert letter.headers["Billrun-Dead-Letter-Permanent"] == "yes"


def test_a_template_that_exceeds_its_budget_is_dead_lettered_at_once_and_blocks_nothing(
    runtime: Runtime, billing: Billing, nats_server: str, streams: StreamNames
) -> None:
    # Passes the checks at import (it compiles and reaches for nothing forbidden),
    # but would loop 10^10 times: its render is stopped by the CPU-time budget and
    # refused, and a refusal is never retried.
    stalling = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    document = {
        "bill_groups": [{"id": "stall", "delivery": "file", "email_template": stalling}],
        "accounts": [account("STALL-1", package(amount="120.00"), bill_group="stall")],
    }
    importing.import_accounts(
        billing, parse_import(json.dumps(document).encode(), "t.json"), "t.json"
    )
    bill(billing)

    asyncio.run(
        work_until(
            runtime,
            nats_server,
            streams,
            lambda: event_count(billing, "InvoiceDelivered") == ACCOUNTS,
        )
    )
    assert event_count(billing, "InvoiceDelivered") == ACCOUNTS

    async def dead_letters() -> list[nats.aio.msg.Msg]:
        nc = await nats.connect(nats_server)
        js = nc.jetstream()
        sub = await js.subscribe(f"{streams.dead_letter_prefix}.>", ordered_consumer=True)
        found = []
        with contextlib.suppress(nats.errors.TimeoutError):
            while True:
                found.append(await sub.next_msg(timeout=2))
        await nc.close()
        return found

    (letter,) = asyncio.run(dead_letters())
    assert letter.headers is not None
    reason = letter.headers["Billrun-Dead-Letter-Reason"]
    assert reason.startswith("DeliveryRefused: ")
    assert "the template used more than 2 s of CPU time" in reason
    assert letter.headers["Billrun-Dead-Letter-Consumer"] == "deliver"
    assert letter.headers["Billrun-Dead-Letter-Permanent"] == "yes"
    assert letter.headers["Billrun-Dead-Letter-Attempts"] == "1"
