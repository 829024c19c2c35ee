"""The outbox relay against a real PostgreSQL and a real NATS JetStream.

Every test bills a run, relays its log, and then reads the stream back with a
durable consumer: each public event must be there exactly once, in its public
form, whatever was killed on the way (the relay between publishing and
saving its position, or the NATS server mid-run). Tests use streams of their
own, deleted afterwards; those that restart NATS, or run the CLI (which publishes
to the default stream names), start a nats-server of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from typer.testing import CliRunner

from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.runs.settings import Selection
from domain.shared.periods import Period
from entrypoints.cli import app
from infrastructure.contract import PUBLIC_FORMS
from infrastructure.embedded import embedded_nats
from infrastructure.messaging import (
    DEFAULT_STREAMS,
    StreamNames,
    subject_for,
)
from infrastructure.relay import (
    NotificationLog,
    Relay,
    RelayAlreadyRunning,
    RelayOutcome,
    RelayPositions,
)
from tests.conftest import import_accounts
from tests.integration.conftest import unique_streams
from tests.integration.helpers import REPO_ROOT, cli_env, varied_accounts, wait_until

BILLRUN = Path(sys.executable).with_name("billrun")
NATS_SERVER = Path(sys.executable).with_name("nats-server")
Q1 = Period(date(2026, 1, 1), date(2026, 3, 31))
Q2 = Period(date(2026, 4, 1), date(2026, 6, 30))


# Scenario and plumbing -------------------------------------------------------------


def bill(billing: Billing, accounts: int, run_id: str = "2026-Q1", prefix: str = "ACC") -> int:
    """Import `accounts` accounts, bill them for Q1 (or Q2); the log's head after."""
    import_accounts(billing, *varied_accounts(accounts, prefix))
    schedule_run(billing, run_id, Q2 if run_id.endswith("Q2") else Q1, None, Selection())
    BillRunExecutor(billing, batch_size=7).execute(run_id)
    return billing.queries.head()


def source_of(billing: Billing) -> NotificationLog:
    return NotificationLog(billing.recorder)  # type: ignore[arg-type]


def positions_of(billing: Billing) -> RelayPositions:
    positions = RelayPositions(source_of(billing).datastore)
    positions.create_table()
    return positions


async def relay_once(
    billing: Billing,
    url: str,
    names: StreamNames,
    positions: RelayPositions | None = None,
    **options: Any,
) -> RelayOutcome:
    positions = positions or positions_of(billing)
    return await Relay(source_of(billing), positions, url, names, **options).run()


async def read_stream(url: str, names: StreamNames) -> list[Msg]:
    """Every message of the stream through a new durable consumer, acked one by one."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        subscription = await js.pull_subscribe(
            f"{names.subject_prefix}.>",
            durable=f"reader-{secrets.token_hex(3)}",
            stream=names.stream,
        )
        received: list[Msg] = []
        while True:
            try:
                batch = await subscription.fetch(500, timeout=1)
            except TimeoutError:  # nats-py raises its own subclass, or asyncio's
                return received
            for msg in batch:
                await msg.ack()
                received.append(msg)
    finally:
        await nc.close()


def notification_ids(messages: list[Msg]) -> list[int]:
    return [int((m.headers or {})["Billrun-Notification-Id"]) for m in messages]


def public_nids(billing: Billing, first: int = 1, last: int | None = None) -> list[int]:
    """The notification ids in first..last whose events have a public form (the
    ones the relay publishes)."""
    last = billing.queries.head() if last is None else last
    rows = billing.queries.notification_rows(first, last, 100_000)
    return [row[0] for row in rows if row[3].rpartition(":")[2] in PUBLIC_FORMS]


def assert_each_once(messages: list[Msg], billing: Billing) -> None:
    """Every public event of the log, once: nothing lost, nothing twice."""
    expected = public_nids(billing)
    ids = notification_ids(messages)
    twice = sorted({i for i in ids if ids.count(i) > 1})
    assert not twice, f"published twice: {twice[:20]}"
    assert sorted(ids) == expected, f"missing: {sorted(set(expected) - set(ids))[:20]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Publishing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "subject"),
    [
        ("domain.invoice:InvoiceClosed", "billing.invoice.InvoiceClosed"),
        ("domain.bill_run:RunStarted", "billing.billrun.RunStarted"),
        ("domain.account:PackageBilled", "billing.account.PackageBilled"),
        ("domain.bill_group:BillGroupConfigured", "billing.billgroup.BillGroupConfigured"),
    ],
)
def test_an_event_is_published_on_its_aggregate_and_name(topic: str, subject: str) -> None:
    assert subject_for(topic) == subject


def test_every_public_event_of_a_bill_run_reaches_the_stream_once_in_order_as_cloudevents(
    billing: Billing, nats_server: str, streams: StreamNames
) -> None:
    head = bill(billing, 30)
    public = public_nids(billing)

    outcome = asyncio.run(relay_once(billing, nats_server, streams, window=64))
    again = asyncio.run(relay_once(billing, nats_server, streams, window=64))
    messages = asyncio.run(read_stream(nats_server, streams))

    assert (outcome.published, outcome.position, outcome.duplicates) == (len(public), head, 0)
    assert outcome.skipped == head - len(public) > 0, "run mechanics are not published"
    assert (again.published, again.position) == (0, head), "nothing new, nothing published"
    rows = {row[0]: row for row in billing.queries.notification_rows(1, head, 1000)}
    assert notification_ids(messages) == public, "each public event once, in commit order"
    for msg in messages:
        assert msg.headers is not None
        nid, originator_id, version, topic, state = rows[
            int(msg.headers["Billrun-Notification-Id"])
        ]
        form = PUBLIC_FORMS[topic.rpartition(":")[2]]
        body = json.loads(msg.data)
        assert msg.subject == subject_for(topic, streams.subject_prefix)
        form.model.model_validate(body)
        assert msg.headers["Nats-Msg-Id"] == msg.headers["ce-id"] == f"{streams.source}:{nid}"
        assert msg.headers["ce-specversion"] == "1.0"
        assert msg.headers["ce-type"] == form.ce_type
        assert msg.headers["ce-source"] == f"/billrun/{streams.source}"
        assert msg.headers["ce-time"] == json.loads(state)["timestamp"]
        assert msg.headers["ce-subject"] == str(body[form.subject])
        assert msg.headers["content-type"] == "application/json"
        assert msg.headers["Billrun-Aggregate-Id"] == str(originator_id)
        assert msg.headers["Billrun-Aggregate-Version"] == str(version)
        assert msg.headers.get("Billrun-Run-Id") == body.get("run_id")

    by_type = {m.headers["ce-type"]: json.loads(m.data) for m in messages if m.headers}
    closed = by_type["billrun.invoice.closed.v1"]
    assert isinstance(closed["total"], str), "money stays a string"
    assert closed["number"].startswith("INV-") and closed["run_id"] == "2026-Q1"
    assert closed["account_id"].startswith("ACC") and closed["currency"]
    assert by_type["billrun.run.completed.v1"]["run_id"] == "2026-Q1"
    assert by_type["billrun.account.package_billed.v1"]["currency"]
    assert positions_of(billing).get(streams.stream)[0] == head


def test_a_second_relay_on_the_same_stream_is_refused(
    billing: Billing, nats_server: str, streams: StreamNames
) -> None:
    bill(billing, 3)
    positions = positions_of(billing)
    with (
        positions.exclusive(streams.stream),
        pytest.raises(RelayAlreadyRunning, match="another relay"),
    ):
        asyncio.run(relay_once(billing, nats_server, streams, positions))


# Crashes ---------------------------------------------------------------------------


class CrashingPositions(RelayPositions):
    """Dies on its n-th save: after that window was published and acked, before its
    position is stored, which is where a crash costs the most."""

    def __init__(self, base: RelayPositions, crash_on_save: int) -> None:
        super().__init__(base.datastore, base.table)
        self.saves = 0
        self.crash_on_save = crash_on_save

    def save(self, stream: str, position: int) -> None:
        self.saves += 1
        if self.saves == self.crash_on_save:
            raise RuntimeError(f"crashed before saving position {position}")
        super().save(stream, position)


def test_a_relay_that_dies_between_publishing_and_saving_publishes_nothing_twice(
    billing: Billing, nats_server: str, streams: StreamNames
) -> None:
    head = bill(billing, 30)
    window = 50
    positions = positions_of(billing)

    with pytest.raises(RuntimeError, match="crashed before saving position 150"):
        asyncio.run(
            relay_once(
                billing, nats_server, streams, CrashingPositions(positions, 3), window=window
            )
        )
    assert positions.get(streams.stream)[0] == 2 * window
    restarted = asyncio.run(relay_once(billing, nats_server, streams, positions, window=window))
    messages = asyncio.run(read_stream(nats_server, streams))

    unsaved = len(public_nids(billing, 2 * window + 1, 3 * window))
    assert restarted.duplicates == unsaved, "the unsaved window went again, and was dropped"
    assert restarted.published == len(public_nids(billing, 2 * window + 1))
    assert restarted.position == head
    assert_each_once(messages, billing)
    assert notification_ids(messages) == sorted(notification_ids(messages))


class NatsServer:
    """A nats-server on a fixed port and store dir, to stop and start again."""

    def __init__(self, store_dir: Path, port: int) -> None:
        self.store_dir = store_dir
        self.port = port
        self.url = f"nats://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.store_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(NATS_SERVER), "--jetstream", "--store_dir", str(self.store_dir),
             "--addr", "127.0.0.1", "--port", str(self.port), "--server_name", "relay-test"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        wait_until(self._ready, timeout=20, interval=0.05, what=f"nats-server on {self.port}")

    def _ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def stop(self) -> None:
        """SIGTERM: nats-server shuts JetStream down cleanly, keeping the store."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        self.process = None


def test_stopping_nats_mid_run_loses_nothing_and_publishes_nothing_twice(
    billing: Billing, tmp_path: Path
) -> None:
    server = NatsServer(tmp_path / "nats", free_port())
    server.store_dir.mkdir()
    server.start()
    names = unique_streams()
    first_head = bill(billing, 150)

    async def scenario() -> tuple[RelayOutcome, int, int]:
        relay = Relay(
            source_of(billing), positions_of(billing), server.url, names,
            window=25, ack_timeout=2.0, poll_interval=0.05, backoff=(0.05, 0.1, 0.2),
        )  # fmt: skip
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop, follow=True))
        while relay.position < first_head // 4:
            assert not running.done(), running
            await asyncio.sleep(0.001)
        await asyncio.to_thread(server.stop)
        # More events while NATS is away: the relay has work it cannot do.
        head = await asyncio.to_thread(bill, billing, 20, "2026-Q2", "LATE")
        await asyncio.sleep(0.5)
        position_while_down = relay.position
        await asyncio.to_thread(server.start)
        while relay.position < head:
            assert not running.done(), running
            await asyncio.sleep(0.01)
        stop.set()
        return await running, position_while_down, head

    try:
        outcome, position_while_down, head = asyncio.run(scenario())
        messages = asyncio.run(read_stream(server.url, names))
    finally:
        server.stop()

    assert position_while_down < head
    assert outcome.retries >= 1
    assert outcome.position == head
    assert_each_once(messages, billing)
    assert notification_ids(messages) == sorted(notification_ids(messages)), "in commit order"


# Replay ----------------------------------------------------------------------------


def test_replay_from_n_republishes_n_to_the_head_under_new_message_ids(
    billing: Billing, nats_server: str, streams: StreamNames
) -> None:
    head = bill(billing, 20)
    first = head - 40
    positions = positions_of(billing)
    asyncio.run(relay_once(billing, nats_server, streams, positions))

    async def replay(replay_id: str, last: int | None = None) -> RelayOutcome:
        relay = Relay(source_of(billing), positions, nats_server, streams, window=16)
        return await relay.replay(first, last, replay_id)

    replayed = asyncio.run(replay("r1"))
    repeated = asyncio.run(replay("r1"))
    partial = asyncio.run(replay("r2", first + 9))
    messages = asyncio.run(read_stream(nats_server, streams))

    published = len(public_nids(billing))
    whole, part = public_nids(billing, first), public_nids(billing, first, first + 9)
    assert (replayed.published, replayed.duplicates) == (len(whole), 0)
    assert (repeated.published, repeated.duplicates) == (len(whole), len(whole)), "nothing twice"
    assert (partial.published, partial.duplicates, partial.position) == (len(part), 0, first + 9)
    assert len(messages) == published + len(whole) + len(part)
    originals = {m.headers["Billrun-Notification-Id"]: m for m in messages[:published] if m.headers}
    copies = messages[published:]
    source = streams.source
    assert [m.headers["Nats-Msg-Id"] for m in copies if m.headers] == [
        *(f"{source}:{nid}:replay:r1" for nid in whole),
        *(f"{source}:{nid}:replay:r2" for nid in part),
    ]
    for copy in copies:
        assert copy.headers is not None
        original = originals[copy.headers["Billrun-Notification-Id"]]
        assert (copy.subject, copy.data) == (original.subject, original.data)
        assert copy.headers["ce-id"] == original.headers["ce-id"], "the same event"
        assert copy.headers["Billrun-Replay-Id"] in ("r1", "r2")
    assert positions.get(streams.stream)[0] == head, "a replay leaves the position alone"


# The CLI ---------------------------------------------------------------------------


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[str]:
    """A nats-server of this test's own: the CLI publishes to the default stream names."""
    with embedded_nats(tmp_path / "nats-home") as url:
        yield url


def relay_env(database_url: str, nats_url: str, home: Path) -> dict[str, str]:
    env = cli_env(database_url, batch_size=5)
    env.update(BILLRUN_NATS_URL=nats_url, BILLRUN_HOME=str(home))
    return env


def billrun(env: dict[str, str], *args: str) -> Any:
    completed = subprocess.run(
        [str(BILLRUN), *args, "--json"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_the_cli_follows_the_log_stops_on_sigterm_reports_and_replays(
    billing: Billing, database_url: str, private_nats: str, tmp_path: Path
) -> None:
    head = bill(billing, 10)
    env = relay_env(database_url, private_nats, tmp_path)
    positions = positions_of(billing)

    before = billrun(env, "relay", "status")
    following = subprocess.Popen(
        [str(BILLRUN), "relay", "run", "--window", "25", "--json"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: positions.get("BILLING")[0] == head, timeout=60, what="the relay")
        following.send_signal(signal.SIGTERM)
        out, err = following.communicate(timeout=30)
    finally:
        if following.poll() is None:
            following.kill()
    after = billrun(env, "relay", "status")
    replayed = billrun(env, "relay", "replay", "--from", str(head - 4), "--id", "cli")
    messages = asyncio.run(read_stream(private_nats, DEFAULT_STREAMS))
    help_text = CliRunner().invoke(app, ["relay", "replay", "--help"], terminal_width=300).output

    assert following.returncode == 0, err
    ran = json.loads(out)
    public = public_nids(billing)
    assert ran == {
        "stream": "BILLING", "published": len(public), "skipped": head - len(public),
        "duplicates": 0, "retries": 0, "position": head, "head": head, "lag": 0,
        "seconds": ran["seconds"],
    }  # fmt: skip
    assert (before["position"], before["head"], before["lag"]) == (0, head, head)
    assert (after["position"], after["lag"]) == (head, 0)
    last_five = len(public_nids(billing, head - 4))
    assert (replayed["replay_id"], replayed["from"]) == ("cli", head - 4)
    assert replayed["published"] == last_five
    assert len(messages) == len(public) + last_five
    assert "idempotent" in help_text


def test_a_relay_killed_after_publishing_before_saving_resumes_without_duplicates(
    billing: Billing, database_url: str, private_nats: str, tmp_path: Path
) -> None:
    head = bill(billing, 20)
    window = 20
    positions_of(billing)  # the table exists, so the gate can lock it
    env = relay_env(database_url, private_nats, tmp_path)
    # The gate: the relay can read its position but not save it, so it publishes a
    # window, gets every ack, and then waits here, where it is killed.
    gate = psycopg.connect(database_url)
    gate.execute("LOCK TABLE relay_position IN EXCLUSIVE MODE")
    monitor = psycopg.connect(database_url, autocommit=True)
    stderr = (tmp_path / "relay.err").open("w")
    relay = subprocess.Popen(
        [str(BILLRUN), "relay", "run", "--window", str(window)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip
    try:

        def saving() -> bool:
            assert relay.poll() is None, (tmp_path / "relay.err").read_text()
            row = monitor.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'relay_position'::regclass "
                "AND NOT granted"
            ).fetchone()
            return bool(row and row[0])

        wait_until(saving, timeout=60, interval=0.02, what="the relay to save its position")
        published = asyncio.run(stream_messages(private_nats))
        relay.send_signal(signal.SIGKILL)
        relay.wait(timeout=10)
    finally:
        if relay.poll() is None:
            relay.kill()
        stderr.close()
        gate.rollback()
        gate.close()

    def unlocked() -> bool:
        row = monitor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        ).fetchone()
        return bool(row and row[0] == 0)

    wait_until(unlocked, timeout=20, what="the killed relay's session to end")
    monitor.close()
    resumed = billrun(env, "relay", "run", "--once", "--window", str(window))
    messages = asyncio.run(read_stream(private_nats, DEFAULT_STREAMS))

    first_window = len(public_nids(billing, 1, window))
    assert published == first_window, "killed with one window published and acked, not saved"
    assert (resumed["published"], resumed["duplicates"]) == (
        len(public_nids(billing)),
        first_window,
    )
    assert resumed["position"] == head
    assert_each_once(messages, billing)


async def stream_messages(url: str) -> int:
    nc: NATS = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(DEFAULT_STREAMS.stream)
        return int(info.state.messages)
    finally:
        await nc.close()
