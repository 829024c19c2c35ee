"""The auditor's and operator's commands as a user runs them: `billrun history`,
`billrun audit`, `billrun projections` and time travel with `--as-of` and
`--version`, each a real process with its exit code, stdout and stderr.

The scenario is written in process to the same database (it is the CLI's
reading that is under test here), so each test spends its time on the commands
it checks. Independent commands run at once, as operators or scripts might.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.events import PackageBilled
from domain.runs.settings import Selection
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from infrastructure.topics import topic_of
from projections.catalog import READ_MODELS as CATALOG
from tests.conftest import account, import_accounts, package
from tests.e2e.conftest import Cli

RUN = "2026-01"
ACCOUNTS = [
    account("ACME-001", package("office", "1200.00"), package("mail", "45.00", "quarterly")),
    account("GLOBEX-002", package("desk", "320.00"), currency="GBP"),
    account("INITECH-003", package("locker", "9000"), currency="JPY", bill_group="key"),
]
ENTRY_FIELDS = {
    "notification_id", "timestamp", "aggregate", "aggregate_id", "version", "event", "payload",
}  # fmt: skip
READ_MODELS = ["invoices", "runs", "run_report", "receivables", "audit_seal"]
MICROSECOND = timedelta(microseconds=1)


@pytest.fixture
def billed(store: Billing) -> Billing:
    """Three accounts billed for January by run 2026-01."""
    import_accounts(store, *ACCOUNTS)
    schedule_run(store, RUN, Period(date(2026, 1, 1), date(2026, 1, 31)), None, Selection())
    assert BillRunExecutor(store, 2).execute(RUN).run.is_completed
    return store


@pytest.fixture
def sql(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


Result = subprocess.CompletedProcess[str]


def at_once(cli: Cli, *commands: tuple[str, ...]) -> list[Result]:
    """Run independent commands concurrently; results in the order given."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda args: cli(*args), commands))


def ok(result: Result) -> Result:
    assert result.returncode == 0, (
        f"billrun {' '.join(result.args[1:])} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def squeezed(text: str) -> str:
    return " ".join(text.split())


def refused(result: Result, message: str, code: int = 2) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "", "a refusal writes nothing on stdout"
    assert "Traceback" not in result.stderr
    assert message in squeezed(result.stderr), result.stderr


def instant(text: str, shift: timedelta = timedelta(0)) -> str:
    return (datetime.fromisoformat(text) + shift).isoformat()


# History ------------------------------------------------------------------------


def test_history_of_a_run_streams_one_json_object_per_line_and_as_an_array(
    cli: Cli, billed: Billing
) -> None:
    jsonl, array, table = at_once(
        cli,
        ("history", "--run", RUN, "--jsonl"),
        ("history", "--run", RUN, "--json"),
        ("history", "--run", RUN),
    )

    entries = [json.loads(line) for line in ok(jsonl).stdout.splitlines()]
    assert len(entries) > 10
    for entry in entries:
        assert set(entry) == ENTRY_FIELDS
        assert isinstance(entry["notification_id"], int)
        assert isinstance(entry["version"], int)
        assert isinstance(entry["payload"], dict)
        datetime.fromisoformat(entry["timestamp"])
    ids = [e["notification_id"] for e in entries]
    assert ids == sorted(set(ids)), "commit order"
    assert (entries[0]["event"], entries[-1]["event"]) == ("RunScheduled", "RunCompleted")
    assert {e["event"] for e in entries} >= {
        "RunStarted", "RunBatchCompleted", "PackageBilled", "InvoiceOpened",
        "InvoiceLineAdded", "InvoiceClosed", "InvoiceNumbersReserved",
    }  # fmt: skip
    amounts = [e["payload"]["line"]["amount"] for e in entries if e["event"] == "PackageBilled"]
    assert amounts == ["1200.00", "45.00", "320.00", "9000"]
    assert json.loads(ok(array).stdout) == entries
    shown = squeezed(ok(table).stdout)
    assert "History (commit order)" in shown
    for event in ("RunScheduled", "PackageBilled", "InvoiceClosed", "RunCompleted"):
        assert event in shown
    assert "AccountOpened" not in shown, "an account's own events are not the run's"


def test_history_takes_at_most_one_subject_and_refuses_an_unknown_one_writing_nothing(
    cli: Cli, billed: Billing
) -> None:
    two, unknown = at_once(
        cli, ("history", "--run", RUN, "--account", "A", "--jsonl"),
        ("history", "--run", "nope", "--json"),
    )  # fmt: skip

    refused(two, "error: name one of --run, --account or --invoice, not --run and --account")
    refused(unknown, "error: no bill run 'nope'")


# Audit --------------------------------------------------------------------------


def chain_head(sql: psycopg.Connection[Any]) -> str:
    """The head of the seal's chain worked out here, from the formula documented in
    `projections/audit_seal.py`, as an auditor would anchor it independently."""
    link = bytes(32)
    for nid, topic, originator_id, version, state in sql.execute(
        "SELECT notification_id, topic, originator_id, originator_version, state "
        "FROM billing_events ORDER BY notification_id"
    ):
        header = f"{nid}\n{topic}\n{originator_id}\n{version}\n".encode()
        link = hashlib.sha256(link + hashlib.sha256(header + bytes(state)).digest()).digest()
    return link.hex()


def test_audit_verify_passes_checks_an_anchored_head_and_names_an_event_altered_with_sql(
    cli: Cli, billed: Billing, sql: psycopg.Connection[Any]
) -> None:
    events = billed.queries.head()
    anchored, forged = chain_head(sql), "0" * 64

    verified, mismatch_json, head_json = at_once(
        cli,
        ("audit", "verify"),
        ("audit", "verify", "--expect-head", forged, "--json"),
        ("audit", "head", "--json"),
    )

    assert ok(verified).stdout.startswith("OK: ")
    assert f"{events} events checked, {events} sealed" in squeezed(verified.stdout)
    assert f"head {anchored} at notification {events}" in squeezed(verified.stdout)
    assert mismatch_json.returncode == 1, mismatch_json.stderr
    report = json.loads(mismatch_json.stdout)
    assert (report["ok"], report["expected_head_matches"]) == (True, False)
    assert (report["checked"], report["sealed_events"], report["unsealed_events"]) == (
        events, events, 0,
    )  # fmt: skip
    assert (report["head"], report["head_notification_id"]) == (anchored, events)
    assert report["first_mismatch"] is None
    assert json.loads(ok(head_json).stdout) == {
        "notification_id": events,
        "link": anchored,
        "count": events,
    }

    first_billed = sql.execute(
        "SELECT min(notification_id) FROM billing_events WHERE topic = %s",
        (topic_of(PackageBilled),),
    ).fetchone()
    assert first_billed is not None
    altered = first_billed[0]
    sql.execute(
        "UPDATE billing_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        "'1200.00', '12.00'), 'UTF8') WHERE notification_id = %s",
        (altered,),
    )
    tampered = cli("audit", "verify")

    assert tampered.returncode == 1, tampered.stderr
    assert tampered.stdout == ""
    assert f"TAMPERED: notification {altered}:" in squeezed(tampered.stderr)
    assert "its bytes were altered" in squeezed(tampered.stderr)


def reseal(sql: psycopg.Connection[Any]) -> None:
    """What someone with write access does after changing an event: recompute every
    digest and link of the seal from the formula (a ten-line script)."""
    link = bytes(32)
    for nid, topic, originator_id, version, state in sql.execute(
        "SELECT notification_id, topic, originator_id, originator_version, state "
        "FROM billing_events ORDER BY notification_id"
    ).fetchall():
        header = f"{nid}\n{topic}\n{originator_id}\n{version}\n".encode()
        digest = hashlib.sha256(header + bytes(state)).digest()
        link = hashlib.sha256(link + digest).digest()
        sql.execute(
            "UPDATE audit_seal_v1 SET digest = %s, link = %s WHERE notification_id = %s",
            (digest, link, nid),
        )


def test_a_signed_anchor_catches_a_total_changed_and_the_seal_recomputed_with_sql(
    cli: Cli, billed: Billing, sql: psycopg.Connection[Any], tmp_path: Path
) -> None:
    key = tmp_path / "audit.key"
    key.write_text("a secret the database never holds\n")
    anchor = tmp_path / "head.json"
    signed = ok(cli("audit", "head", "--json", "--key-file", str(key)))
    anchor.write_text(signed.stdout)
    head = json.loads(signed.stdout)
    assert head["algorithm"] == "HMAC-SHA256" and len(head["signature"]) == 64
    # Legitimate appends after anchoring are fine: the anchor names its position.
    schedule_run(billed, "2026-02", Period(date(2026, 2, 1), date(2026, 2, 28)), None, Selection())
    assert BillRunExecutor(billed, 2).execute("2026-02").run.is_completed

    before, at_position, at_tip = at_once(
        cli,
        ("audit", "verify", "--anchor", str(anchor), "--key-file", str(key)),
        ("audit", "verify", "--expect-head", head["link"], "--at", str(head["notification_id"])),
        ("audit", "verify", "--expect-head", head["link"]),
    )
    assert f"matches the signed head anchored at notification {head['notification_id']}" in (
        squeezed(ok(before).stdout)
    )
    assert f"anchored at notification {head['notification_id']}" in squeezed(ok(at_position).stdout)
    assert at_tip.returncode == 1, "the tip moved on: the current head is not the anchored one"

    sql.execute(
        "UPDATE billing_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        "'1200.00', '12.00'), 'UTF8') WHERE notification_id = (SELECT min(notification_id) "
        "FROM billing_events WHERE topic = %s)",
        (topic_of(PackageBilled),),
    )
    reseal(sql)
    assert ok(cli("audit", "verify")).stdout.startswith("OK: "), "the plain chain is fooled"

    caught = cli("audit", "verify", "--anchor", str(anchor), "--key-file", str(key), "--json")
    report = json.loads(caught.stdout)
    assert caught.returncode == 1
    assert (report["ok"], report["expected_head_matches"], report["anchor_signature_valid"]) == (
        True, False, True,
    )  # fmt: skip
    assert report["expected_head_at"] == head["notification_id"]
    assert report["head_at_expected"] != head["link"]
    plain = cli("audit", "verify", "--anchor", str(anchor), "--key-file", str(key))
    assert plain.returncode == 1
    assert f"MISMATCH: the head at notification {head['notification_id']}" in squeezed(plain.stderr)

    # Nor can the anchor itself be forged without the key.
    forged = {**head, "link": report["head_at_expected"]}
    anchor.write_text(json.dumps(forged))
    refused_anchor = cli("audit", "verify", "--anchor", str(anchor), "--key-file", str(key))
    assert refused_anchor.returncode == 1
    assert "the anchor's signature does not hold with this key" in squeezed(refused_anchor.stderr)


def test_audit_verify_lists_every_finding_and_refuses_bad_anchor_options(
    cli: Cli, billed: Billing, sql: psycopg.Connection[Any], tmp_path: Path
) -> None:
    ok(cli("audit", "head"))  # sealed before the tampering
    sql.execute(
        "UPDATE billing_events SET state = state || '\\x20'::bytea WHERE notification_id IN (2, 3)"
    )
    short_key = tmp_path / "short.key"
    short_key.write_text("short")
    anchor = tmp_path / "anchor.json"
    anchor.write_text("{}")

    tampered, no_expect, no_key, bad_key, bad_anchor = at_once(
        cli,
        ("audit", "verify"),
        ("audit", "verify", "--at", "3"),
        ("audit", "verify", "--anchor", str(anchor)),
        ("audit", "head", "--key-file", str(short_key)),
        ("audit", "verify", "--anchor", str(anchor), "--key-file", str(tmp_path / "nope")),
    )

    assert tampered.returncode == 1
    lines = tampered.stderr.splitlines()
    assert lines[0] == "TAMPERED: 2 findings"
    assert lines[1].startswith("  notification 2: ") and "altered" in lines[1]
    assert lines[2].startswith("  notification 3: ") and "altered" in lines[2]
    refused(no_expect, "error: --at names where --expect-head was anchored")
    refused(no_key, "error: --anchor needs --key-file")
    refused(bad_key, "a key needs at least 16 bytes, it has 5")
    refused(bad_anchor, "cannot read it")


# Projections --------------------------------------------------------------------


def test_projections_status_and_a_rebuild_that_leaves_the_invoice_list_unchanged(
    cli: Cli, billed: Billing
) -> None:
    head = billed.queries.head()
    listed = json.loads(ok(cli("invoice", "list", "--json")).stdout)
    assert len(listed) == 3

    states = json.loads(ok(cli("projections", "status", "--json")).stdout)

    assert [s["name"] for s in states] == READ_MODELS
    for state in states:
        assert state.keys() >= {"code_version", "active", "state", "position", "head", "lag"}
        version = CATALOG[state["name"]].view_class.version
        # `current` only at the head: a view behind it says so (the next read catches up).
        expected = "current" if state["lag"] == 0 else "behind (caught up on the next read)"
        assert (state["code_version"], state["active"], state["state"]) == (
            version, f"v{version}", expected,
        )  # fmt: skip
        assert state["head"] == head
        assert state["lag"] == head - state["position"]
    by_name = {s["name"]: s for s in states}
    assert (by_name["invoices"]["position"], by_name["invoices"]["lag"]) == (head, 0)
    assert (by_name["runs"]["position"], by_name["runs"]["lag"]) == (0, head)
    assert by_name["runs"]["state"] == "behind (caught up on the next read)"
    # `invoice list` reads payment statuses from the receivables model: caught up too.
    assert (by_name["receivables"]["position"], by_name["receivables"]["lag"]) == (head, 0)

    rebuilt = ok(cli("projections", "rebuild", "invoices"))

    version = CATALOG["invoices"].view_class.version
    assert f"invoices: v{version}_2 now serves reads (replaced v{version})" in squeezed(
        rebuilt.stdout
    )
    assert json.loads(ok(cli("invoice", "list", "--json")).stdout) == listed


# Time travel --------------------------------------------------------------------


def test_time_travel_shows_invoices_accounts_and_runs_as_they_were(
    cli: Cli, billed: Billing
) -> None:
    run = billed.get_run(RUN)
    invoice = billed.get_invoice(invoice_uuid(RUN, "ACME-001"))
    assert run.scheduled_at and run.started_at and invoice.modified_on
    closed_at = invoice.modified_on.isoformat()
    between = (run.scheduled_at + (run.started_at - run.scheduled_at) / 2).isoformat()

    invoice_v1, invoice_closed, invoice_before, account_v1, run_scheduled = at_once(
        cli,
        ("invoice", "show", "1", "--version", "1", "--json"),
        ("invoice", "show", "INV-00000001", "--as-of", closed_at, "--json"),
        ("invoice", "show", "1", "--as-of", instant(closed_at, -MICROSECOND)),
        ("account", "show", "ACME-001", "--version", "1", "--json"),
        ("run", "status", RUN, "--as-of", between, "--json"),
    )

    opened = json.loads(ok(invoice_v1).stdout)
    assert (opened["id"], opened["status"], opened["version"]) == (str(invoice.id), "open", 1)
    assert (opened["number"], opened["lines"], opened["total"]) == (None, [], "0.00")
    closed = json.loads(ok(invoice_closed).stdout)
    assert (closed["number"], closed["status"], closed["version"]) == (1, "closed", 4)
    assert closed["total"] == "1245.00"
    # Opened, filled and closed in one transaction: just before, it did not exist yet.
    refused(invoice_before, f"error: no invoice '{invoice.id}'")
    first = json.loads(ok(account_v1).stdout)
    assert (first["id"], first["name"], first["version"]) == ("ACME-001", "ACME-001 Ltd", 1)
    assert first["packages"] == []
    scheduled = json.loads(ok(run_scheduled).stdout)
    assert (scheduled["run_id"], scheduled["status"], scheduled["version"]) == (
        RUN, "scheduled", 1,
    )  # fmt: skip
    assert (scheduled["as_of"], scheduled["batches"]) == (between, 0)
