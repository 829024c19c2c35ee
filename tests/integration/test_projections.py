"""The read side: the invoices, run-status and run-report views against the event store.

Every test states what the log holds (accounts imported, runs executed), builds
a view from it, and compares the view with the aggregates rebuilt from the same
events: the view must hold exactly what the store says, no more, no less, once.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import Tracking
from eventsourcing.projection import ProjectionRunner
from psycopg.sql import SQL, Composable, Identifier
from rich.console import Console

from application.billing.transactions import ChargeInput, UsageInput, add_charges, record_usage
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.terms import ChargeTerms
from domain.invoicing.events import InvoiceOpened
from domain.invoicing.invoice import Invoice
from domain.runs.bill_run import BillRun
from domain.runs.settings import RunSettings, Selection
from domain.runs.statistics import BatchStatistics
from domain.shared.periods import Period
from entrypoints.run_tables import key_value_table, report_tables, status_rows
from infrastructure.topics import topic_of
from projections.catalog import READ_MODELS, ReadSide
from projections.invoices import InvoicesProjection, InvoicesView
from projections.rebuild import rebuild
from projections.receivables import ReceivablesProjection, ReceivablesView
from projections.registry import ProjectionRegistry
from projections.run_report import RunReportProjection, RunReportView
from projections.runs import RunStatusProjection, RunStatusView
from projections.view import View, catch_up, open_view
from tests.conftest import account, import_accounts, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))

# Long enough that no test ever waits this long unless something is broken.
WAIT = 20.0


def scenario_accounts(count: int = 12) -> list[dict[str, Any]]:
    """Accounts in three currencies and two bill groups, with monthly, quarterly
    and arrears packages, so runs have several batches and several totals."""
    records = []
    for i in range(1, count + 1):
        currency = ["EUR", "GBP", "JPY"][i % 3]
        unit = "00" if currency == "JPY" else ".00"  # JPY has no minor unit
        packages = [package("office", f"{100 + i}{unit}")]
        if i % 2:
            packages.append(package("mail", f"45{unit}", frequency="quarterly"))
        if i % 3 == 0:
            packages.append(package("meeting", f"80{unit}", timing="arrears"))
        group = "key" if i % 4 == 0 else "monthly"
        records.append(account(f"P-{i:03d}", *packages, currency=currency, bill_group=group))
    return records


def bill(
    app: Billing,
    run_id: str,
    period: Period,
    selection: Selection | None = None,
    batch_size: int = 5,
    settings: RunSettings | None = None,
) -> BillRun:
    schedule_run(app, run_id, period, None, selection or Selection(), settings)
    return BillRunExecutor(app, batch_size).execute(run_id).run


def taxes_usage_and_charges(app: Billing) -> None:
    """Tax rates, usage and one-off charges on some scenario accounts, so lines of
    every kind, several categories and tax rates, and a credit reach the views.

    - P-001 (GBP) is taxed at 20 %; its office becomes category `workspace` at 5 %
      with a usage rate; usage in January (two prices) and in March.
    - P-002 (JPY) gets a 10 % charge in January; P-003 (EUR, 21 %) a credit in
      January and a charge in February (after the January run's window).
    - P-004 (EUR, key group, 21 %) gets usage of its office in February.
    """
    at = app.clock
    for account_id, rate in (("P-001", "20"), ("P-003", "21"), ("P-004", "21")):
        found = app.get_account(account_id)
        found.change_details(
            found.name, found.invoice_email, found.bill_group, at(), tax_rate=Decimal(rate)
        )
        if account_id == "P-001":
            office = found.packages["office"].terms
            found.revise_package(
                office.model_copy(
                    update={
                        "category": "workspace",
                        "tax_rate": Decimal("5"),
                        "usage_rate": Decimal("0.25"),
                    }
                ),
                at(),
            )
        app.save(found)
    usage = [
        ("P-001", "u1", "12", date(2026, 1, 5), None),
        ("P-001", "u2", "3.5", date(2026, 1, 20), None),
        ("P-001", "u3", "2", date(2026, 1, 21), Decimal("1.10")),
        ("P-001", "u4", "7", date(2026, 3, 2), None),
        ("P-004", "u1", "40", date(2026, 2, 10), Decimal("0.15")),
    ]
    record_usage(
        app,
        [
            UsageInput(f"usage {n}", a, u, "office", Decimal(q), on, price)
            for n, (a, u, q, on, price) in enumerate(usage)
        ],
        "test",
    )
    charges = [
        ChargeInput(f"charge {n}", account_id, ChargeTerms.model_validate(terms))
        for n, (account_id, terms) in enumerate(CHARGES)
    ]
    add_charges(app, charges, "test")


CHARGES: list[tuple[str, dict[str, str]]] = [
    ("P-002", {"charge_id": "setup", "description": "Set-up fee", "amount": "1500",
               "charge_date": "2026-01-10", "category": "one-off", "tax_rate": "10"}),
    ("P-003", {"charge_id": "credit", "description": "Goodwill credit", "amount": "-25.00",
               "charge_date": "2026-01-15", "category": "credits"}),
    ("P-003", {"charge_id": "move", "description": "Move desks", "amount": "60.00",
               "charge_date": "2026-02-03"}),
]  # fmt: skip
"""One-off charges of the scenario (account, terms): a taxed charge, a credit at the
account's rate, a charge after January."""


def billed_history(app: Billing) -> None:
    """January in batches of five, then February for one bill group, then an
    account-selected March run without usage, then January again, which finds
    nothing left to bill. Lines of every kind: packages, usage and charges."""
    import_accounts(app, *scenario_accounts())
    taxes_usage_and_charges(app)
    bill(app, "2026-01", JANUARY)
    bill(app, "2026-02-key", FEBRUARY, Selection(groups=("key",)))
    bill(
        app, "2026-03-two", MARCH, Selection(accounts=("P-001", "P-003")), batch_size=1,
        settings=RunSettings(bill_usage=False, categories=("services", "charges")),
    )  # fmt: skip
    bill(app, "2026-01-again", JANUARY)


def last_notification_id(app: Billing, topics: Sequence[str]) -> int:
    notifications = app.recorder.select_notifications(1, 1_000_000, topics=list(topics))
    assert notifications, "the log holds none of these events"
    return notifications[-1].id


def stored_invoices(app: Billing) -> dict[UUID, Invoice]:
    """Every invoice the event store holds, rebuilt from its events."""
    opened = app.recorder.select_notifications(1, 1_000_000, topics=[topic_of(InvoiceOpened)])
    return {n.originator_id: app.get_invoice(n.originator_id) for n in opened}


def assert_invoices_view_matches_store(app: Billing, view: InvoicesView) -> None:
    invoices = stored_invoices(app)
    assert invoices, "the scenario should have billed something"
    rows = list(view.search())
    assert sorted(row.id for row in rows) == sorted(invoices)
    for row in rows:
        invoice = invoices[row.id]
        assert (
            row.number, row.account, row.currency, row.status, row.run_id, row.posting_date,
            row.subtotal, row.tax, row.total,
        ) == (
            invoice.number, invoice.account_id, invoice.currency, invoice.status.value,
            invoice.run_id, invoice.posting_date, invoice.subtotal, invoice.tax, invoice.total,
        )  # fmt: skip
        assert [
            (
                line["line_id"], line["account_id"], line["source"], line["description"],
                line["service_period_start"], line["service_period_end"], line["quantity"],
                line["unit_amount"], line["amount"], line["posting_date"], line["rule"],
                line["kind"], line["category"], line["tax_rate"], line["tax"],
            )
            for line in row.lines
        ] == [
            (
                line.line_id, line.account_id, line.source, line.description,
                line.service_period_start, line.service_period_end, line.quantity,
                line.unit_amount, line.amount, line.posting_date, line.rule,
                line.kind.value, line.category, line.tax_rate, line.tax,
            )
            for line in invoice.lines
        ]  # fmt: skip
        assert sum(line["amount"] for line in row.lines) == row.subtotal
        assert sum(line["tax"] for line in row.lines) == row.tax
        assert row.subtotal + row.tax == row.total


def assert_run_view_matches_store(app: Billing, view: RunStatusView) -> None:
    invoices = stored_invoices(app)
    rows = {row.run_id: row for row in view.all()}
    for run_id, row in rows.items():
        run = app.get_run(run_id)
        numbers = sorted(
            i.number for i in invoices.values() if i.run_id == run_id and i.number is not None
        )
        assert row.status == run.status.value
        assert (row.period_start, row.period_end) == (run.period.start, run.period.end)
        assert row.posting_date == run.posting_date
        assert row.selection == run.selection.model_dump(mode="json")
        assert row.settings == run.settings.model_dump(mode="json")
        assert row.accounts_in_scope == run.accounts_in_scope
        assert row.batches == run.batches
        assert row.counters == {
            name: getattr(run.statistics, name)
            for name in BatchStatistics.model_fields
            # `stranded` is read from the run itself (`run status`), not kept in the view.
            if name not in ("totals", "tax_totals", "gross_totals", "base_totals",
                            "content_digest", "billed", "line_counts", "stranded")
        }  # fmt: skip
        stats = run.statistics
        assert row.totals == {
            currency: {"net": net, "tax": stats.tax_totals[currency],
                       "gross": stats.gross_totals[currency]}
            for currency, net in stats.totals.items()
        }  # fmt: skip
        assert row.base_totals == stats.base_totals
        assert (row.first_invoice_number, row.last_invoice_number) == (
            (numbers[0], numbers[-1]) if numbers else (None, None)
        )
        assert (row.scheduled_at, row.started_at, row.completed_at) == (
            run.scheduled_at,
            run.started_at,
            run.completed_at,
        )
        assert row.counters["invoices"] == len(numbers)


def table_checksums(view: View, tables: Sequence[tuple[str, str]]) -> dict[str, tuple[int, str]]:
    """Row count and md5 of every row's text, ordered by key, per table."""
    sums = {}
    with view.datastore.transaction(commit=False) as curs:
        for base, key in tables:
            curs.execute(
                SQL(
                    "SELECT count(*) AS n, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {}), "
                    "'')) AS sum FROM {} t"
                ).format(SQL(key), view.table(base))
            )
            row = curs.fetchone()
            assert row is not None
            sums[base] = (row["n"], row["sum"])
    return sums


INVOICE_TABLES = [("invoices", "id"), ("invoice_lines", "invoice_id, line_no")]
RUN_TABLES = [("runs", "run_id"), ("run_totals", "run_id, currency")]
RECEIVABLES_TABLES = [
    ("receivables", "receivables_id"),
    ("receivable_items", "document_id"),
    ("receivable_payments", "account_id, payment_id"),
    ("receivable_allocations", "account_id, payment_id, line_no"),
    ("receivable_attempts", "attempt_id"),
]
RUN_REPORT_TABLES = [
    ("run_report", "run_id, step, kind, category, currency"),
    ("run_batches", "run_id, batch"),
    ("run_timing", "run_id"),
]


def drop_view(view: View, tables: Sequence[tuple[str, str]]) -> None:
    """Drop a view's tables and its tracking table, as if it had never been built."""
    dropped: list[Composable] = [view.table(base) for base, _ in tables]
    dropped.append(
        SQL("{}.{}").format(Identifier(view.datastore.schema), Identifier(view.tracking_table_name))
    )
    with view.datastore.transaction(commit=True) as curs:
        for table in dropped:
            curs.execute(SQL("DROP TABLE {}").format(table))


@pytest.fixture
def invoices_view(es_env: dict[str, str]) -> Iterator[InvoicesView]:
    view = open_view(InvoicesView, es_env)
    assert isinstance(view, InvoicesView)
    yield view
    view.datastore.close()


@pytest.fixture
def runs_view(es_env: dict[str, str]) -> Iterator[RunStatusView]:
    view = open_view(RunStatusView, es_env)
    assert isinstance(view, RunStatusView)
    yield view
    view.datastore.close()


def test_the_invoices_view_holds_exactly_the_invoices_and_lines_of_the_event_store(
    billing: Billing, invoices_view: InvoicesView
) -> None:
    billed_history(billing)

    head = catch_up(billing, invoices_view, InvoicesProjection.topics, page_size=7)

    assert head == billing.queries.head()
    assert invoices_view.max_tracking_id(billing.name) == head
    assert_invoices_view_matches_store(billing, invoices_view)
    # The scenario reaches every kind of line, several categories and tax rates, a credit.
    lines = [line for row in invoices_view.search() for line in row.lines]
    assert {line["kind"] for line in lines} == {"recurring", "usage", "charge"}
    assert {line["category"] for line in lines} == {"services", "workspace", "one-off",
                                                   "credits", "charges"}  # fmt: skip
    assert {line["tax_rate"] for line in lines} == {Decimal(r) for r in (0, 5, 10, 20, 21)}
    credit = next(line for line in lines if line["source"] == "charge:credit")
    assert (credit["amount"], credit["tax"]) == (Decimal("-25.00"), Decimal("-5.25"))
    usage = [line for line in lines if line["kind"] == "usage" and line["account_id"] == "P-001"]
    assert sorted((u["quantity"], u["unit_amount"], u["amount"], u["tax"]) for u in usage) == [
        (Decimal("2"), Decimal("1.10"), Decimal("2.20"), Decimal("0.11")),
        (Decimal("15.5"), Decimal("0.25"), Decimal("3.88"), Decimal("0.19")),
    ]
    # Searching by run, account and status finds the same invoices as the store.
    invoices = stored_invoices(billing)
    january = {i.id for i in invoices.values() if i.run_id == "2026-01"}
    assert {row.id for row in invoices_view.search(run_id="2026-01")} == january
    assert {row.account for row in invoices_view.search(account_id="P-002")} == {"P-002"}
    assert len(list(invoices_view.search(status="closed"))) == len(invoices)
    first = min(i.number for i in invoices.values() if i.number is not None)
    assert invoices_view.id_of_number(first) == next(
        i.id for i in invoices.values() if i.number == first
    )


def test_the_run_status_view_matches_the_statistics_of_each_bill_run(
    billing: Billing, runs_view: RunStatusView
) -> None:
    billed_history(billing)
    schedule_run(billing, "2026-04", Period(date(2026, 4, 1), date(2026, 4, 30)), None, Selection())

    catch_up(billing, runs_view, RunStatusProjection.topics, page_size=3)

    rows = {row.run_id: row for row in runs_view.all()}
    assert set(rows) == {"2026-01", "2026-02-key", "2026-03-two", "2026-01-again", "2026-04"}
    assert_run_view_matches_store(billing, runs_view)
    assert rows["2026-01"].batches == 3  # twelve accounts in batches of five
    assert rows["2026-01-again"].counters["invoices"] == 0
    assert rows["2026-01-again"].totals == {}
    assert rows["2026-04"].status == "scheduled"
    assert set(rows["2026-01"].totals) == {"EUR", "GBP", "JPY"}


def test_catching_up_twice_changes_nothing(
    billing: Billing, invoices_view: InvoicesView, runs_view: RunStatusView
) -> None:
    billed_history(billing)
    views: list[tuple[View, Sequence[str], list[tuple[str, str]]]] = [
        (invoices_view, InvoicesProjection.topics, INVOICE_TABLES),
        (runs_view, RunStatusProjection.topics, RUN_TABLES),
    ]
    progress: list[tuple[int, int]] = []
    for view, topics, tables in views:
        head = catch_up(billing, view, topics)
        before = table_checksums(view, tables)

        assert catch_up(billing, view, topics, on_progress=lambda *p: progress.append(p)) == head

        assert progress == [], "a view at the head has nothing to read"
        assert table_checksums(view, tables) == before
        assert view.max_tracking_id(billing.name) == head


def test_two_concurrent_catch_ups_apply_each_event_once(
    billing: Billing, es_env: dict[str, str], clock: Any
) -> None:
    """Two readers (say two `billrun invoice list`) catch the same views up while
    a bill run is writing: each event lands once, whoever applies it."""
    import_accounts(billing, *scenario_accounts(30))
    writing = threading.Event()
    writing.set()

    def write() -> None:
        try:
            for run_id, period in (("2026-01", JANUARY), ("2026-02", FEBRUARY), ("2026-03", MARCH)):
                bill(billing, run_id, period, batch_size=3)
        finally:
            writing.clear()

    def read(barrier: threading.Barrier) -> None:
        # Each reader opens its own application and views, as a process would.
        try:
            app = Billing(es_env, clock=clock)
            views = [
                (open_view(InvoicesView, es_env), InvoicesProjection.topics),
                (open_view(RunStatusView, es_env), RunStatusProjection.topics),
            ]
        except BaseException:
            barrier.abort()
            raise
        try:
            barrier.wait(timeout=WAIT)
            while writing.is_set():
                for view, topics in views:
                    catch_up(app, view, topics, page_size=4)
            for view, topics in views:
                catch_up(app, view, topics, page_size=4)
        finally:
            for view, _ in views:
                view.datastore.close()
            app.close()

    barrier = threading.Barrier(3)
    with ThreadPoolExecutor(max_workers=3) as pool:
        readers = [pool.submit(read, barrier) for _ in range(2)]
        barrier.wait(timeout=WAIT)
        writer = pool.submit(write)
        for future in [writer, *readers]:
            future.result(timeout=WAIT * 3)

    invoices = open_view(InvoicesView, es_env)
    runs = open_view(RunStatusView, es_env)
    try:
        assert isinstance(invoices, InvoicesView) and isinstance(runs, RunStatusView)
        assert invoices.max_tracking_id(billing.name) == billing.queries.head()
        assert_invoices_view_matches_store(billing, invoices)
        assert_run_view_matches_store(billing, runs)
        assert [row.run_id for row in runs.all()] == ["2026-03", "2026-02", "2026-01"]
    finally:
        invoices.datastore.close()
        runs.datastore.close()


class PausingInvoicesView(InvoicesView):
    """An invoices view that stops at the door before each batch it applies, so a
    test can order two catch-ups exactly as two racing processes might."""

    arrived: threading.Event
    door: threading.Event

    def apply(self, *args: Any, **kwargs: Any) -> bool:
        self.arrived.set()
        if not self.door.wait(timeout=WAIT):
            raise TimeoutError("the test never opened the door")
        return super().apply(*args, **kwargs)


def pausing_view(es_env: dict[str, str]) -> PausingInvoicesView:
    view = open_view(PausingInvoicesView, es_env)
    assert isinstance(view, PausingInvoicesView)
    view.arrived, view.door = threading.Event(), threading.Event()
    return view


def test_a_catch_up_that_read_an_older_position_does_not_apply_events_twice(
    billing: Billing, es_env: dict[str, str]
) -> None:
    """Reader A reads the log up to January; February is billed; reader B reads from
    the same (empty) position up to February; A commits first. B's batch now
    overlaps what A applied, and must not be applied over it."""
    import_accounts(billing, *scenario_accounts())
    bill(billing, "2026-01", JANUARY)
    a, b = pausing_view(es_env), pausing_view(es_env)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(catch_up, billing, a, InvoicesProjection.topics)
            assert a.arrived.wait(timeout=WAIT)
            bill(billing, "2026-02", FEBRUARY)
            second = pool.submit(catch_up, billing, b, InvoicesProjection.topics)
            assert b.arrived.wait(timeout=WAIT)

            a.door.set()
            first.result(timeout=WAIT)
            b.door.set()
            assert second.result(timeout=WAIT) == billing.queries.head()

        assert b.max_tracking_id(billing.name) == billing.queries.head()
        assert_invoices_view_matches_store(billing, b)
    finally:
        a.datastore.close()
        b.datastore.close()


def test_the_projection_runner_follows_new_writes_live(
    billing: Billing, es_env: dict[str, str]
) -> None:
    topics = InvoicesProjection.topics
    with ProjectionRunner(
        application_class=Billing,
        projection_class=InvoicesProjection,
        view_class=InvoicesView,
        env=es_env,
    ) as runner:
        import_accounts(billing, *scenario_accounts())
        bill(billing, "2026-01", JANUARY)
        runner.wait(last_notification_id(billing, topics), timeout=WAIT)
        assert_invoices_view_matches_store(billing, runner.view)

        bill(billing, "2026-02", FEBRUARY)
        runner.wait(last_notification_id(billing, topics), timeout=WAIT)
        assert_invoices_view_matches_store(billing, runner.view)


def test_the_projection_runner_and_a_catch_up_share_a_view_without_double_applying(
    billing: Billing, es_env: dict[str, str], invoices_view: InvoicesView
) -> None:
    """A worker follows the log live while a CLI read catches the same view up."""
    topics = InvoicesProjection.topics
    import_accounts(billing, *scenario_accounts(30))
    with ProjectionRunner(
        application_class=Billing,
        projection_class=InvoicesProjection,
        view_class=InvoicesView,
        env=es_env,
    ) as runner:
        for run_id, period in (("2026-01", JANUARY), ("2026-02", FEBRUARY), ("2026-03", MARCH)):
            bill(billing, run_id, period, batch_size=3)
            catch_up(billing, invoices_view, topics, page_size=3)
        last = last_notification_id(billing, topics)
        assert invoices_view.has_tracking_id(billing.name, last)
        runner.wait(last, timeout=WAIT)
        assert_invoices_view_matches_store(billing, runner.view)


@pytest.mark.parametrize(
    ("view_class", "projection", "tables"),
    [
        (InvoicesView, InvoicesProjection, INVOICE_TABLES),
        (RunStatusView, RunStatusProjection, RUN_TABLES),
        (RunReportView, RunReportProjection, RUN_REPORT_TABLES),
        (ReceivablesView, ReceivablesProjection, RECEIVABLES_TABLES),
    ],
    ids=["invoices", "runs", "run_report", "receivables"],
)
def test_dropping_a_view_and_catching_up_from_the_first_event_yields_identical_rows(
    billing: Billing,
    es_env: dict[str, str],
    view_class: type[View],
    projection: Any,
    tables: list[tuple[str, str]],
) -> None:
    billed_history(billing)
    view = open_view(view_class, es_env)
    # Built event by event, the way the ProjectionRunner builds it.
    for notification in billing.recorder.select_notifications(1, 1_000_000):
        event = billing.mapper.to_domain_event(notification)
        if notification.topic in projection.topics:
            projection(view).process_event(event, Tracking(billing.name, notification.id))
    before = table_checksums(view, tables)
    assert before[tables[0][0]][0] > 0

    drop_view(view, tables)
    view.datastore.close()
    rebuilt = open_view(view_class, es_env)
    try:
        assert rebuilt.max_tracking_id(billing.name) is None
        catch_up(billing, rebuilt, projection.topics, page_size=5)

        assert table_checksums(rebuilt, tables) == before
    finally:
        rebuilt.datastore.close()


# Upgrading: version 1 served as it is until rebuilt --------------------------------

VERSION_2_COLUMNS = {
    "invoices": {"invoice_lines": ("kind", "category", "tax_rate", "tax")},
    "runs": {"runs": ("settings",)},
    "run_report": {"run_report": ("category", "tax"), "run_timing": ("settings",)},
}
"""The columns version 2 of each read model added to the tables of version 1."""


def build_version_1(app: Billing, es_env: dict[str, str]) -> None:
    """The read models as version 1 left them: registered at `v1`, built from the
    log, without the columns version 2 added."""
    registry = ProjectionRegistry(app.recorder.datastore)  # type: ignore[attr-defined]
    for name, tables in VERSION_2_COLUMNS.items():
        model = READ_MODELS[name]
        assert registry.get(name, 1).active == "v1"
        view = open_view(model.view_class, es_env, "v1")
        try:
            catch_up(app, view, model.topics)
            with view.datastore.transaction(commit=True) as curs:
                for base, columns in tables.items():
                    for column in columns:
                        curs.execute(
                            SQL("ALTER TABLE {} DROP COLUMN {}").format(
                                view.table(base), Identifier(column)
                            )
                        )
        finally:
            view.datastore.close()


def decimals(value: Any) -> Any:
    """JSON with every decimal string made a Decimal: 0 and 0.00 compare equal."""
    if isinstance(value, dict):
        return {k: decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decimals(v) for v in value]
    if isinstance(value, str) and value.lstrip("-").replace(".", "", 1).isdigit():
        return Decimal(value)
    return value


def test_a_version_1_read_model_is_served_with_what_it_lacks_until_rebuilt(
    billing: Billing, es_env: dict[str, str]
) -> None:
    """After an upgrade, reads serve the old tables (with a warning) and must not
    fail on the columns they lack: lines written before kinds, categories and tax
    read as the domain reads their events (recurring, services, no tax), settings
    the old version did not keep read as unknown. A rebuild then agrees."""
    import_accounts(billing, *scenario_accounts())
    bill(billing, "2026-01", JANUARY)
    build_version_1(billing, es_env)

    stale = ReadSide(billing, es_env)
    try:
        invoices = [row.as_json() for row in stale.fresh_invoices().search()]
        run = stale.fresh_runs().get("2026-01")
        report = stale.fresh_run_report().report("2026-01")
        assert len(stale.warnings) == 3
        assert all("is version 1 but this code is version" in w for w in stale.warnings)
        for name in VERSION_2_COLUMNS:
            rebuild(stale, name)
        rebuilt_invoices = [row.as_json() for row in stale.fresh_invoices().search()]
        rebuilt_run = stale.fresh_runs().get("2026-01")
        rebuilt_report = stale.fresh_run_report().report("2026-01")
    finally:
        stale.close()

    lines = [line for invoice in invoices for line in invoice["lines"]]
    assert lines
    assert {(line["kind"], line["category"], line["tax_rate"], line["tax"]) for line in lines} == {
        ("recurring", "services", "0", "0")
    }
    assert decimals(invoices) == decimals(rebuilt_invoices)
    assert run is not None and rebuilt_run is not None
    assert run.settings is None
    assert run.as_json() == {**rebuilt_run.as_json(), "settings": None}
    assert rebuilt_run.settings == RunSettings().model_dump(mode="json")
    assert report is not None and rebuilt_report is not None
    assert report["settings"] is None
    assert list(report["per_category"]) == ["services"]
    # Tables built before version 3 did not keep the invoices' tax rounding: unknown
    # (these invoices are untaxed, so the rebuilt report's rounding is 0).
    assert all(t["tax_rounding"] is None for t in report["per_currency"].values())
    assert all(Decimal(t["tax_rounding"]) == 0 for t in rebuilt_report["per_currency"].values())
    unknown = {c: {**t, "tax_rounding": None} for c, t in rebuilt_report["per_currency"].items()}
    assert decimals({**report, "settings": None, "timings": None}) == decimals(
        {**rebuilt_report, "settings": None, "timings": None, "per_currency": unknown}
    )
    # The commands print a stale model too.
    console = Console(file=io.StringIO(), width=100)
    console.print(report_tables(report))
    console.print(key_value_table("run", status_rows(run.as_json())))
    printed = " ".join(console.file.getvalue().split())  # type: ignore[attr-defined]
    assert "settings │ steps │ unknown" in printed
    assert "steps │ unknown" in printed
