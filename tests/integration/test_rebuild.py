"""Rebuilding a read model beside the one serving reads, against real PostgreSQL.

A rebuild must end with exactly the rows the live projection holds, keep reads
answering while it runs, survive being interrupted (and resume), include writes
that arrive meanwhile, and switch a model whose code version changed. The audit
seal is never rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest

from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.runs.settings import Selection
from domain.shared.periods import Period
from projections.audit_seal import AuditSealView, seal_up_to_head, verify
from projections.catalog import READ_MODELS, ReadSide
from projections.invoices import InvoicesView
from projections.rebuild import RebuildRefused, rebuild
from projections.receivables import ReceivablesView
from projections.run_report import RunReportView
from projections.runs import RunStatusView
from projections.view import View, catch_up, open_view
from tests.conftest import account, import_accounts, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))
REBUILDABLE: dict[str, type[View]] = {
    "invoices": InvoicesView,
    "runs": RunStatusView,
    "run_report": RunReportView,
    "receivables": ReceivablesView,
}
V = InvoicesView.version
"""The invoices model's code version: a fresh database serves `invoices_v{V}`."""
NEXT = V + 1
"""A code version bump, as the tests below simulate it."""


class Interrupted(Exception):
    """What an operator's Ctrl-C (or a crash) looks like to the rebuild."""


def customers(count: int = 12) -> list[dict[str, Any]]:
    currencies = ["EUR", "GBP", "JPY"]
    records = []
    for i in range(count):
        currency = currencies[i % 3]
        unit = "" if currency == "JPY" else ".00"
        packages = [package("office", f"{100 + i}{unit}")]
        if i % 2:
            packages.append(package("mail", f"45{unit}", frequency="quarterly"))
        if i % 3 == 0:
            packages.append(package("meeting", f"80{unit}", timing="arrears"))
        group = "key" if i % 4 == 0 else "monthly"
        records.append(account(f"R-{i:03d}", *packages, currency=currency, bill_group=group))
    return records


def bill(app: Billing, run_id: str, period: Period, selection: Selection | None = None) -> None:
    schedule_run(app, run_id, period, None, selection or Selection())
    assert BillRunExecutor(app, 3).execute(run_id).run.is_completed


def billed_history(app: Billing) -> None:
    import_accounts(app, *customers())
    bill(app, "2026-01", JANUARY)
    bill(app, "2026-02-key", FEBRUARY, Selection(groups=("key",)))
    schedule_run(app, "2026-03", MARCH, None, Selection())  # scheduled, not yet executed


def invoice_list(read_side: ReadSide) -> list[dict[str, Any]]:
    return [row.as_json() for row in read_side.fresh_invoices().search()]


def tables_of(database_url: str, prefix: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name LIKE %s",
            (prefix + "%",),
        ).fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def read_side(billing: Billing, es_env: dict[str, str]) -> Iterator[ReadSide]:
    opened = ReadSide(billing, es_env)
    yield opened
    opened.close()


@pytest.fixture
def other_read_side(es_env: dict[str, str]) -> Iterator[ReadSide]:
    """Another process's read side: its own application, its own connections."""
    app = Billing(es_env)
    opened = ReadSide(app, es_env)
    yield opened
    opened.close()
    app.close()


@pytest.mark.parametrize("name", list(REBUILDABLE))
def test_a_rebuild_from_the_first_event_yields_exactly_the_rows_of_the_live_projection(
    billing: Billing, read_side: ReadSide, database_url: str, name: str
) -> None:
    billed_history(billing)
    live = read_side.fresh(name, REBUILDABLE[name])
    before = live.checksum()
    assert "d41d8cd98f00b204e9800998ecf8427e" not in before.split(";")[0], "rows to compare"

    outcome = rebuild(read_side, name, page_size=7)

    v = REBUILDABLE[name].version
    assert (outcome.name, outcome.replaced, outcome.active) == (name, f"v{v}", f"v{v}_2")
    assert outcome.resumed is False
    assert outcome.positions == billing.queries.head()
    rebuilt = read_side.view(name)
    assert rebuilt.suffix == f"v{v}_2"
    assert rebuilt.max_tracking_id(billing.name) == billing.queries.head()
    assert rebuilt.checksum() == before
    registration = read_side.registry.get(name, v)
    assert (registration.active, registration.building) == (f"v{v}_2", None)
    assert not tables_of(database_url, f"{name}_v{v}_tracking")
    assert tables_of(database_url, f"{name}_v{v}_2_tracking")


def test_reads_keep_answering_from_the_active_version_during_a_rebuild(
    billing: Billing, read_side: ReadSide, es_env: dict[str, str]
) -> None:
    billed_history(billing)
    expected = invoice_list(read_side)
    assert expected
    answers: list[list[dict[str, Any]]] = []

    def read_meanwhile(done: int, total: int) -> None:
        # A command started mid-rebuild opens its own read side, as a process would.
        reader = ReadSide(billing, es_env)
        try:
            assert reader.view("invoices").suffix == f"v{V}"
            answers.append(invoice_list(reader))
            assert reader.warnings == []
        finally:
            reader.close()

    rebuild(read_side, "invoices", on_progress=read_meanwhile, page_size=5)

    assert len(answers) > 1, "the rebuild should take several pages"
    assert all(answer == expected for answer in answers)
    assert invoice_list(read_side) == expected


def test_an_interrupted_rebuild_leaves_the_current_version_serving_and_resumes_next_time(
    billing: Billing,
    read_side: ReadSide,
    other_read_side: ReadSide,
    es_env: dict[str, str],
    database_url: str,
) -> None:
    billed_history(billing)
    live = read_side.fresh_invoices()
    before = live.checksum()
    expected = invoice_list(read_side)
    pages: list[tuple[int, int]] = []

    def interrupt_after_the_first_page(done: int, total: int) -> None:
        pages.append((done, total))
        raise Interrupted

    with pytest.raises(Interrupted):
        rebuild(read_side, "invoices", on_progress=interrupt_after_the_first_page, page_size=5)

    done, total = pages[0]
    assert 0 < done < total
    registration = read_side.registry.get("invoices", V)
    assert (registration.active, registration.building) == (f"v{V}", f"v{V}_2")
    assert other_read_side.view("invoices").suffix == f"v{V}"
    assert invoice_list(other_read_side) == expected
    assert [s.state for s in other_read_side.states() if s.name == "invoices"] == [
        f"rebuilding into v{V}_2"
    ]
    partial = open_view(InvoicesView, es_env, f"v{V}_2")
    try:
        assert partial.max_tracking_id(billing.name) == done
    finally:
        partial.datastore.close()

    outcome = rebuild(read_side, "invoices", page_size=5)

    assert outcome.resumed is True
    assert (outcome.replaced, outcome.active) == (f"v{V}", f"v{V}_2")
    assert outcome.positions == billing.queries.head() - done
    assert read_side.view("invoices").checksum() == before
    assert read_side.registry.get("invoices", V).building is None
    assert tables_of(database_url, "invoice") == {
        f"invoices_v{V}_2",
        f"invoice_lines_v{V}_2",
        f"invoices_v{V}_2_tracking",
    }
    assert invoice_list(read_side) == expected


def test_writes_arriving_during_a_rebuild_are_in_the_rebuilt_version(
    billing: Billing, read_side: ReadSide, es_env: dict[str, str]
) -> None:
    billed_history(billing)
    read_side.fresh_invoices()
    head_before = billing.queries.head()

    def write_once(done: int, total: int) -> None:
        if billing.queries.head() == head_before:
            BillRunExecutor(billing, 3).execute("2026-03")

    outcome = rebuild(read_side, "invoices", on_progress=write_once, page_size=5)

    assert billing.queries.head() > head_before, "the run was written during the rebuild"
    rebuilt = read_side.view("invoices")
    assert outcome.active == rebuilt.suffix == f"v{V}_2"
    assert rebuilt.max_tracking_id(billing.name) == billing.queries.head()
    march = list(read_side.fresh_invoices().search(run_id="2026-03"))
    assert march
    assert len(march) == billing.get_run("2026-03").statistics.invoices
    # Equal, row for row, to the same model built from scratch after every write.
    scratch = open_view(InvoicesView, es_env, f"v{V}_99")
    try:
        catch_up(billing, scratch, READ_MODELS["invoices"].topics)
        assert rebuilt.checksum() == scratch.checksum()
    finally:
        scratch.drop()
        scratch.datastore.close()


def test_a_code_version_bump_is_served_old_with_a_warning_until_rebuilt(
    billing: Billing,
    read_side: ReadSide,
    es_env: dict[str, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    billed_history(billing)
    old_rows = invoice_list(read_side)
    states = read_side.states()
    assert [s.needs_rebuild for s in states] == [False] * len(READ_MODELS)
    # A view behind the head is not called current (the next read catches it up).
    assert any(s.lag > 0 for s in states)
    assert all(s.state == ("current" if s.lag == 0 else "behind (caught up on the next read)")
               for s in states)  # fmt: skip

    monkeypatch.setattr(InvoicesView, "version", NEXT)
    BillRunExecutor(billing, 3).execute("2026-03")  # written after the code changed
    upgraded = ReadSide(billing, es_env)
    try:
        states = {s.name: s for s in upgraded.states()}
        invoices = states["invoices"]
        assert (invoices.code_version, invoices.active, invoices.active_version) == (
            NEXT, f"v{V}", V,
        )  # fmt: skip
        assert invoices.needs_rebuild
        assert invoices.state == "needs rebuild"
        assert invoices.as_json()["needs_rebuild"] is True
        assert not any(s.needs_rebuild for name, s in states.items() if name != "invoices")

        served = invoice_list(upgraded)
        assert served == old_rows, "the old version is served as it was, not written"
        (warning,) = upgraded.warnings
        lag = billing.queries.head() - invoices.position
        assert lag > 0
        assert f"invoices read model is version {V}" in warning
        assert f"this code is version {NEXT}" in warning
        assert f"{lag} events behind" in warning
        assert "billrun projections rebuild invoices" in warning

        outcome = rebuild(upgraded, "invoices")
    finally:
        upgraded.close()

    assert outcome.replaced == f"v{V}"
    assert outcome.active.startswith(f"v{NEXT}_")
    after = ReadSide(billing, es_env)
    try:
        invoices = next(s for s in after.states() if s.name == "invoices")
        assert (invoices.active, invoices.state, invoices.lag) == (outcome.active, "current", 0)
        rows = invoice_list(after)
        assert after.warnings == []
    finally:
        after.close()
    assert {row["run_id"] for row in rows} == {"2026-01", "2026-02-key", "2026-03"}
    assert rows[: len(old_rows)] == old_rows
    assert tables_of(database_url, f"invoices_v{V}") == set()


def test_a_rebuild_interrupted_before_the_code_version_changed_starts_afresh_for_the_new_one(
    billing: Billing, read_side: ReadSide, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    billed_history(billing)
    read_side.fresh_invoices()

    def interrupt(done: int, total: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        rebuild(read_side, "invoices", on_progress=interrupt, page_size=5)
    assert read_side.registry.get("invoices", V).building == f"v{V}_2"

    monkeypatch.setattr(InvoicesView, "version", NEXT)
    outcome = rebuild(read_side, "invoices", page_size=5)

    assert outcome.resumed is False, "a half-built version 1 is no start for version 2"
    assert (outcome.replaced, outcome.active) == (f"v{V}", f"v{NEXT}_3")
    assert outcome.positions == billing.queries.head()
    assert tables_of(database_url, "invoice") == {
        f"invoices_v{NEXT}_3",
        f"invoice_lines_v{NEXT}_3",
        f"invoices_v{NEXT}_3_tracking",
    }
    assert next(s for s in read_side.states() if s.name == "invoices").state == "current"


def test_the_audit_seal_is_never_rebuilt(
    billing: Billing, read_side: ReadSide, database_url: str
) -> None:
    billed_history(billing)
    seal = read_side.audit_seal()
    assert isinstance(seal, AuditSealView)
    seal_up_to_head(billing, seal)
    head = seal.head()

    with pytest.raises(RebuildRefused, match="audit_seal is never rebuilt"):
        rebuild(read_side, "audit_seal")

    registration = read_side.registry.get("audit_seal", 1)
    assert (registration.active, registration.building) == ("v1", None)
    assert tables_of(database_url, "audit_seal") == {"audit_seal_v1", "audit_seal_v1_tracking"}
    result = verify(billing, read_side.audit_seal())
    assert result.ok
    assert result.head == head


def test_rebuilding_an_unknown_read_model_is_refused(
    billing: Billing, read_side: ReadSide, database_url: str
) -> None:
    billed_history(billing)
    tables = tables_of(database_url, "")

    with pytest.raises(RebuildRefused, match="no read model 'invoice'; known: invoices, runs"):
        rebuild(read_side, "invoice")

    assert tables_of(database_url, "") == tables
