"""The audit seal against real PostgreSQL: a hash chain over the notification log
that notices any stored event altered, deleted or inserted behind the
application's back, and any rewritten link of the seal itself.

Tampering is done the way an intruder with database access would do it: plain
SQL on `billing_events` and on the seal's table. Each test then asks `verify`
to name the exact notification that no longer matches.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.events import PackageBilled
from domain.receivables.events import AutoPaySet
from domain.receivables.receivables import Receivables
from domain.runs.settings import Selection
from domain.shared.periods import Period
from infrastructure.persistence import ForgedEventError
from infrastructure.topics import topic_of
from projections.audit_seal import AuditSealView, seal_up_to_head, verify
from projections.catalog import ReadSide
from projections.view import open_view
from tests.conftest import SteppingClock, account, import_accounts, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))
SEAL_TABLE = "audit_seal_v1"

# Long enough that no test ever waits this long unless something is broken.
WAIT = 20.0


def customers(prefix: str = "C", count: int = 6) -> list[dict[str, Any]]:
    currencies = ["EUR", "GBP", "JPY"]
    records = []
    for i in range(count):
        currency = currencies[i % 3]
        unit = "" if currency == "JPY" else ".00"
        packages = [package("office", f"{100 + i}{unit}")]
        if i % 2:
            packages.append(package("mail", f"45{unit}", frequency="quarterly"))
        records.append(account(f"{prefix}-{i:03d}", *packages, currency=currency))
    return records


def bill(app: Billing, run_id: str, period: Period, batch_size: int = 2) -> None:
    schedule_run(app, run_id, period, None, Selection())
    assert BillRunExecutor(app, batch_size).execute(run_id).run.is_completed


def billed_january(app: Billing) -> None:
    import_accounts(app, *customers())
    bill(app, "2026-01", JANUARY)


class Sql:
    """Plain SQL on the test's database, as someone with database access runs it."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True, row_factory=dict_row)

    def rows(self, query: str, *params: Any) -> list[dict[str, Any]]:
        return self.conn.execute(query, params).fetchall()

    def run(self, statement: str, *params: Any) -> int:
        return self.conn.execute(statement, params).rowcount

    def notification_ids(self, topic: str | None = None) -> list[int]:
        where = "WHERE topic = %s" if topic else ""
        params = (topic,) if topic else ()
        return [
            r["notification_id"]
            for r in self.rows(
                f"SELECT notification_id FROM billing_events {where} ORDER BY notification_id",
                *params,
            )
        ]

    def event_count(self) -> int:
        return int(self.rows("SELECT count(*) AS n FROM billing_events")[0]["n"])

    def seal_rows(self) -> list[dict[str, Any]]:
        return self.rows(f"SELECT * FROM {SEAL_TABLE} ORDER BY notification_id")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def sql(database_url: str) -> Iterator[Sql]:
    opened = Sql(database_url)
    yield opened
    opened.close()


@pytest.fixture
def read_side(billing: Billing, es_env: dict[str, str]) -> Iterator[ReadSide]:
    opened = ReadSide(billing, es_env)
    yield opened
    opened.close()


@pytest.fixture
def seal(read_side: ReadSide) -> AuditSealView:
    return read_side.audit_seal()


def chain_of_the_log(sql: Sql) -> bytes:
    """The head of the chain, computed here from the documented formula, independently
    of the code under test: link = SHA-256(previous link + SHA-256(header + state))."""
    link = bytes(32)
    for r in sql.rows(
        "SELECT notification_id, topic, originator_id, originator_version, state "
        "FROM billing_events ORDER BY notification_id"
    ):
        header = (
            f"{r['notification_id']}\n{r['topic']}\n{r['originator_id']}\n"
            f"{r['originator_version']}\n"
        ).encode()
        digest = hashlib.sha256(header + bytes(r["state"])).digest()
        link = hashlib.sha256(link + digest).digest()
    return link


def a_package_billed_in_the_middle(sql: Sql) -> int:
    billed = sql.notification_ids(topic_of(PackageBilled))
    return billed[len(billed) // 2]


# Sealing and verifying ----------------------------------------------------------


def test_after_a_bill_run_the_log_verifies_against_a_head_that_commits_to_every_event(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)

    head_position = seal_up_to_head(billing, seal)
    result = verify(billing, seal)

    events = sql.event_count()
    assert head_position == billing.queries.head() == sql.notification_ids()[-1]
    assert result.ok, result.finding
    assert result.finding is None
    assert result.checked == events
    assert result.unsealed == 0
    assert result.head.count == events
    assert result.head.notification_id == head_position
    assert result.head.link == chain_of_the_log(sql).hex()
    assert [r["notification_id"] for r in sql.seal_rows()] == sql.notification_ids()
    assert result.as_json()["ok"] is True
    assert result.as_json()["first_mismatch"] is None


def test_an_event_whose_stored_bytes_were_altered_is_named_as_altered(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)
    seal_up_to_head(billing, seal)
    altered = a_package_billed_in_the_middle(sql)

    changed = sql.run(
        "UPDATE billing_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        "'\"office\"', '\"offic3\"'), 'UTF8') WHERE notification_id = %s",
        altered,
    )
    assert changed == 1

    result = verify(billing, seal)

    assert not result.ok
    assert result.finding is not None
    assert result.finding.notification_id == altered
    assert "altered" in result.finding.problem
    assert "PackageBilled" in result.finding.problem
    # Every event is still compared, and the one altered is the only finding.
    assert result.checked == len(sql.notification_ids())
    assert result.findings == (result.finding,)
    assert result.findings_count == 1
    assert result.as_json()["first_mismatch"] == {
        "notification_id": altered,
        "problem": result.finding.problem,
    }
    assert str(result.finding).startswith(f"notification {altered}: ")


@pytest.mark.parametrize("which", ["in the middle", "the last one"])
def test_a_deleted_event_is_named_as_deleted(
    billing: Billing, seal: AuditSealView, sql: Sql, which: str
) -> None:
    billed_january(billing)
    seal_up_to_head(billing, seal)
    ids = sql.notification_ids()
    deleted = a_package_billed_in_the_middle(sql) if which == "in the middle" else ids[-1]

    assert sql.run("DELETE FROM billing_events WHERE notification_id = %s", deleted) == 1

    result = verify(billing, seal)

    assert not result.ok
    assert result.finding is not None
    assert result.finding.notification_id == deleted
    assert "deleted" in result.finding.problem
    assert result.checked == len(ids) - 1
    if which == "in the middle":
        # ... and its aggregate's next version now follows a gap.
        assert result.findings_count == 2
        assert "a version is missing before it" in result.findings[1].problem
    else:
        assert result.findings_count == 1


def test_an_event_inserted_into_a_gap_below_the_sealed_head_is_named_as_inserted(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    import_accounts(billing, *customers("A"))
    # A gap in the notification ids, as a rolled-back transaction leaves one.
    sequence = sql.rows(
        "SELECT pg_get_serial_sequence('billing_events', 'notification_id') AS name"
    )[0]["name"]
    gap = [sql.rows("SELECT nextval(%s) AS id", sequence)[0]["id"] for _ in range(3)]
    import_accounts(billing, *customers("B"))
    bill(billing, "2026-01", JANUARY)
    seal_up_to_head(billing, seal)
    assert not set(gap) & set(sql.notification_ids())
    assert verify(billing, seal).ok, "a gap alone is no tampering"
    inserted = gap[1]

    sql.run(
        "INSERT INTO billing_events (notification_id, originator_id, originator_version, "
        "topic, state) SELECT %s, %s, originator_version, topic, state FROM billing_events "
        "WHERE notification_id = %s",
        inserted,
        uuid4(),
        sql.notification_ids()[0],
    )
    seal_up_to_head(billing, seal)  # sealing more does not paper over it
    result = verify(billing, seal)

    assert not result.ok
    assert result.finding is not None
    assert result.finding.notification_id == inserted
    assert "inserted" in result.finding.problem
    assert result.checked == len(sql.notification_ids()) - 1


def test_a_rewritten_link_in_the_seal_is_detected_at_its_notification(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)
    seal_up_to_head(billing, seal)
    rewritten = a_package_billed_in_the_middle(sql)

    sql.run(
        f"UPDATE {SEAL_TABLE} SET link = sha256('forged'::bytea) WHERE notification_id = %s",
        rewritten,
    )
    result = verify(billing, seal)

    assert not result.ok
    assert result.finding is not None
    assert result.finding.notification_id == rewritten
    assert "rewritten" in result.finding.problem


def test_verifying_from_the_middle_checks_the_events_from_there_on(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)
    seal_up_to_head(billing, seal)
    ids = sql.notification_ids()
    start = ids[len(ids) // 2]

    from_middle = verify(billing, seal, start=start)

    assert from_middle.ok, from_middle.finding
    assert from_middle.checked == len(ids) - ids.index(start)
    assert from_middle.head == verify(billing, seal).head

    # An event altered after the starting point is found from there too.
    later = ids[-2]
    sql.run(
        "UPDATE billing_events SET state = state || '\\x20'::bytea WHERE notification_id = %s",
        later,
    )
    result = verify(billing, seal, start=start)
    assert not result.ok
    assert result.finding is not None
    assert result.finding.notification_id == later
    assert result.checked == len(ids) - ids.index(start)
    assert result.findings_count == 1


def test_events_written_after_sealing_are_sealed_next_time_and_the_log_still_verifies(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)
    first_head = seal_up_to_head(billing, seal)
    first_link = seal.head().link

    bill(billing, "2026-02", FEBRUARY)
    before_sealing = verify(billing, seal)
    new_events = len([i for i in sql.notification_ids() if i > first_head])
    assert new_events > 0
    assert before_sealing.ok, before_sealing.finding
    assert before_sealing.unsealed == new_events
    assert before_sealing.head.notification_id == first_head

    second_head = seal_up_to_head(billing, seal)
    result = verify(billing, seal)

    assert second_head == billing.queries.head() > first_head
    assert result.ok, result.finding
    assert (result.checked, result.unsealed) == (sql.event_count(), 0)
    assert result.head.link == chain_of_the_log(sql).hex()
    # The chain is only ever extended: the old head is still the link at its notification.
    link_then = next(r["link"] for r in sql.seal_rows() if r["notification_id"] == first_head)
    assert bytes(link_then).hex() == first_link


def test_sealing_again_with_no_new_events_changes_nothing(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)
    head = seal_up_to_head(billing, seal)
    rows, checksum = sql.seal_rows(), seal.checksum()

    assert seal_up_to_head(billing, seal) == head
    assert seal_up_to_head(billing, seal) == head

    assert sql.seal_rows() == rows
    assert seal.checksum() == checksum
    assert seal.max_tracking_id(billing.name) == head


def assert_one_consistent_chain(billing: Billing, seal: AuditSealView, sql: Sql) -> None:
    rows = sql.seal_rows()
    assert [r["notification_id"] for r in rows] == sql.notification_ids()
    assert [r["position"] for r in rows] == list(range(1, len(rows) + 1))
    result = verify(billing, seal)
    assert result.ok, result.finding
    assert result.checked == sql.event_count()
    assert result.head.link == chain_of_the_log(sql).hex()


def test_two_processes_sealing_at_once_while_runs_are_written_make_one_consistent_chain(
    billing: Billing, es_env: dict[str, str], clock: SteppingClock, sql: Sql
) -> None:
    """Two `billrun audit verify` at once, while bill runs are committing."""
    import_accounts(billing, *customers(count=12))
    writing = threading.Event()
    writing.set()

    def write() -> None:
        try:
            for run_id, period in (("2026-01", JANUARY), ("2026-02", FEBRUARY), ("2026-03", MARCH)):
                bill(billing, run_id, period, batch_size=1)
        finally:
            writing.clear()

    def seal_repeatedly(barrier: threading.Barrier) -> int:
        # Each sealer has its own application and read side, as a process would.
        try:
            app = Billing(es_env, clock=clock)
            side = ReadSide(app, es_env)
        except BaseException:
            barrier.abort()
            raise
        try:
            barrier.wait(timeout=WAIT)
            rounds = 0
            while writing.is_set():
                seal_up_to_head(app, side.audit_seal())
                rounds += 1
            seal_up_to_head(app, side.audit_seal())
            return rounds
        finally:
            side.close()
            app.close()

    barrier = threading.Barrier(3)
    with ThreadPoolExecutor(max_workers=3) as pool:
        sealers = [pool.submit(seal_repeatedly, barrier) for _ in range(2)]
        barrier.wait(timeout=WAIT)
        writer = pool.submit(write)
        for future in [writer, *sealers]:
            future.result(timeout=WAIT * 3)

    side = ReadSide(billing, es_env)
    try:
        assert_one_consistent_chain(billing, side.audit_seal(), sql)
    finally:
        side.close()


class PausingSeal(AuditSealView):
    """The audit seal, stopping at a door before it writes, so a test can order two
    sealers exactly as two racing processes might."""

    arrived: threading.Event
    door: threading.Event

    def seal(self, *args: Any, **kwargs: Any) -> bool:
        self.arrived.set()
        if not self.door.wait(timeout=WAIT):
            raise TimeoutError("the test never opened the door")
        return super().seal(*args, **kwargs)


def pausing_seal(es_env: dict[str, str]) -> PausingSeal:
    view = open_view(PausingSeal, es_env, "v1")
    assert isinstance(view, PausingSeal)
    view.arrived, view.door = threading.Event(), threading.Event()
    return view


@pytest.mark.parametrize("first_to_commit", ["the one that read less", "the one that read more"])
def test_two_sealers_that_read_different_heads_make_one_consistent_chain(
    billing: Billing, es_env: dict[str, str], sql: Sql, first_to_commit: str
) -> None:
    """Sealer A reads the log up to January and waits; February is billed; sealer B
    reads from the same (empty) seal up to February and waits. Whichever commits
    first, the other must extend the chain, not seal the same events again."""
    billed_january(billing)
    a, b = pausing_seal(es_env), pausing_seal(es_env)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            sealing_a = pool.submit(seal_up_to_head, billing, a)
            assert a.arrived.wait(timeout=WAIT)
            bill(billing, "2026-02", FEBRUARY)
            sealing_b = pool.submit(seal_up_to_head, billing, b)
            assert b.arrived.wait(timeout=WAIT)

            first, second = (a, b) if first_to_commit == "the one that read less" else (b, a)
            first_future, second_future = (
                (sealing_a, sealing_b) if first is a else (sealing_b, sealing_a)
            )
            first.door.set()
            first_future.result(timeout=WAIT)
            second.door.set()
            second_future.result(timeout=WAIT)

        assert a.max_tracking_id(billing.name) == billing.queries.head()
        assert_one_consistent_chain(billing, a, sql)
    finally:
        a.datastore.close()
        b.datastore.close()


# Rows the seal never saw, and findings beyond the first ---------------------------


def forge_auto_pay(sql: Sql, receivables_id: object, token: str, notification_id: int) -> None:
    """Append a forged `AutoPaySet` to an aggregate, as an intruder would with SQL."""
    version = sql.rows(
        "SELECT max(originator_version) AS v FROM billing_events WHERE originator_id = %s",
        receivables_id,
    )[0]["v"]
    sql.run(
        "INSERT INTO billing_events (notification_id, originator_id, originator_version, "
        "topic, state) SELECT %s, originator_id, %s, %s, convert_to(jsonb_build_object("
        "'timestamp', convert_from(state, 'UTF8')::jsonb -> 'timestamp', 'token', %s::text)"
        "::text, 'UTF8') FROM billing_events WHERE originator_id = %s AND "
        "originator_version = %s",
        notification_id,
        version + 1,
        topic_of(AutoPaySet),
        token,
        receivables_id,
        version,
    )


def test_an_event_forged_at_notification_id_0_is_found_by_verify_and_refused_when_loaded(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)
    seal_up_to_head(billing, seal)
    receivables = billing.get_receivables("C-000")
    assert receivables.autopay_token is None
    anchored = seal.head()

    forge_auto_pay(sql, receivables.id, "tok_attacker", 0)
    seal_up_to_head(billing, seal)  # sealing more does not bless it
    result = verify(billing, seal)

    assert not result.ok
    assert result.finding is not None
    assert result.finding.notification_id == 0
    assert "below 1" in result.finding.problem
    assert "AutoPaySet" in result.finding.problem
    assert result.findings_count == 1
    # The chain itself still matches: only the walk over every row finds it.
    assert seal.head() == anchored
    assert verify(billing, seal, at=anchored.notification_id).link_at == anchored.link
    # Nothing acts on it: loading the aggregate, one or many at once, refuses it.
    with pytest.raises(ForgedEventError, match="notification id 0"):
        billing.get_receivables("C-000")
    with pytest.raises(ForgedEventError, match="notification id 0"):
        billing.load_many(Receivables, [receivables.id])


def test_a_negative_id_and_a_gap_in_an_aggregates_versions_are_each_reported(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)
    seal_up_to_head(billing, seal)
    first, second = (billing.get_receivables(a).id for a in ("C-001", "C-002"))
    forge_auto_pay(sql, first, "tok_a", -5)
    # An event deleted and the seal rebuilt over what is left: the chain holds,
    # the aggregate's versions do not.
    victim = sql.rows(
        "SELECT notification_id FROM billing_events WHERE originator_id = %s "
        "AND originator_version = 1",
        second,
    )[0]["notification_id"]
    sql.run("DELETE FROM billing_events WHERE notification_id = %s", victim)

    result = verify(billing, seal)

    problems = {f.notification_id: f.problem for f in result.findings}
    assert result.findings_count == len(result.findings) >= 3
    assert "below 1" in problems[-5]
    assert "deleted" in problems[victim]
    assert any("follows version 0: a version is missing" in p for p in problems.values())
    assert result.as_json()["findings_count"] == result.findings_count
    assert [f["notification_id"] for f in result.as_json()["findings"]] == sorted(problems)


def test_findings_are_all_counted_and_the_first_hundred_kept(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)
    seal_up_to_head(billing, seal)
    events = sql.event_count()
    assert events > 60

    sql.run("UPDATE billing_events SET state = state || '\\x20'::bytea")
    result = verify(billing, seal)

    assert result.findings_count == events
    assert len(result.findings) == min(events, 100)
    assert all("altered" in f.problem for f in result.findings)


def test_a_head_anchored_at_a_position_still_matches_after_later_appends(
    billing: Billing, seal: AuditSealView, sql: Sql
) -> None:
    billed_january(billing)
    seal_up_to_head(billing, seal)
    anchored = seal.head()
    bill(billing, "2026-02", FEBRUARY)
    seal_up_to_head(billing, seal)
    assert seal.head().link != anchored.link

    result = verify(billing, seal, at=anchored.notification_id)

    assert result.ok
    assert result.link_at == anchored.link
