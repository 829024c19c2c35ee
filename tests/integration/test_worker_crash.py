"""Kill -9 a `billrun worker` while it renders and delivers, start another: every
invoice is rendered once and recorded as delivered once; at the real SMTP server
every invoice arrives, and at most the one message in flight at the kill arrives
twice (same Message-ID): SMTP cannot join PostgreSQL's transaction."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import date
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from application.billing.import_document import parse_import
from application.billing.importing import import_accounts
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.runs.settings import Selection
from domain.shared.periods import Period
from infrastructure.embedded import embedded_nats
from tests.conftest import account, package
from tests.integration.helpers import BILLRUN, REPO_ROOT

INVOICES = 12


class CountingSmtp:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(envelope.content)
        return "250 OK"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(message_from_bytes(m)["Message-ID"]) for m in self.messages]


@pytest.fixture
def smtp() -> Iterator[tuple[CountingSmtp, int]]:
    handler = CountingSmtp()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[str]:
    # A server of its own: the worker uses the default stream names.
    with embedded_nats(tmp_path / "nats-home") as url:
        yield url


def delivered(billing: Billing) -> int:
    with billing.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        curs.execute(
            "SELECT count(*) AS n FROM billing_events WHERE topic LIKE '%:InvoiceDelivered'"
        )
        row = curs.fetchone()
        return int(row["n"])


def rendered(billing: Billing) -> int:
    with billing.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        curs.execute(
            "SELECT count(*) AS n FROM billing_events WHERE topic LIKE '%:InvoiceRendered'"
        )
        row = curs.fetchone()
        return int(row["n"])


def start_worker(
    database_url: str, nats_url: str, smtp_port: int, home: Path
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        BILLRUN_DATABASE_URL=database_url,
        BILLRUN_NATS_URL=nats_url,
        BILLRUN_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        BILLRUN_HOME=str(home),
        NO_COLOR="1",
    )
    return subprocess.Popen(
        [str(BILLRUN), "worker"], cwd=REPO_ROOT, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_for(condition: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_killing_the_worker_mid_rendering_loses_nothing_and_repeats_at_most_the_message_in_flight(
    billing: Billing,
    database_url: str,
    own_nats: str,
    smtp: tuple[CountingSmtp, int],
    tmp_path: Path,
) -> None:
    handler, port = smtp
    document = {
        "bill_groups": [{"id": "mail", "delivery": "email"}],
        "accounts": [
            account(f"ACC-{i:02d}", package(amount="99.00"), bill_group="mail")
            for i in range(INVOICES)
        ],
    }
    import_accounts(billing, parse_import(json.dumps(document).encode(), "t.json"), "t.json")
    schedule_run(billing, "R", Period(date(2026, 1, 1), date(2026, 1, 31)), None, Selection())
    BillRunExecutor(billing, batch_size=5).execute("R")

    first = start_worker(database_url, own_nats, port, tmp_path / "home")
    try:
        # Mid-way: some invoices rendered, not all delivered.
        wait_for(lambda: rendered(billing) >= 4)
        assert delivered(billing) < INVOICES, "too fast to interrupt; raise INVOICES"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    second = start_worker(database_url, own_nats, port, tmp_path / "home")
    try:
        wait_for(lambda: delivered(billing) == INVOICES)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, second.stderr.read() if second.stderr else ""
    finally:
        if second.poll() is None:
            second.kill()

    assert rendered(billing) == 2 * INVOICES
    assert delivered(billing) == INVOICES
    ids = handler.message_ids()
    # Every invoice reached the SMTP server: nothing lost.
    assert len(set(ids)) == INVOICES
    # An SMTP server is not part of PostgreSQL's transaction: a kill after the
    # server accepted a message and before InvoiceDelivered was committed sends
    # that one message again on restart. It is the only repeat a kill can cause,
    # and it carries the same Message-ID, so receivers can recognise it.
    repeats = len(ids) - len(set(ids))
    assert repeats <= 1, f"{len(ids)} messages for {INVOICES} invoices"
