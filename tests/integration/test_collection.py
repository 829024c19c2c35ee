"""Collecting payments in a bill run through the sandbox gateway, against real
PostgreSQL: outcomes by token, retries, timeouts reconciled, and the crash
between the gateway's charge and its recording that must never charge twice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest

from application.receivables.collection import Collector
from application.runs.check import check_run
from application.runs.executor import BillRunExecutor, RunCheckFailed
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.receivables.collection import CollectionType, GatewayOutcome
from domain.runs.settings import RunSettings, Selection
from domain.shared.periods import Period
from entrypoints.presenters import run_steps
from infrastructure.payment_gateway import SandboxGateway
from infrastructure.settings import Settings
from tests.conftest import account, import_accounts, package
from tests.integration.helpers import REPO_ROOT, billing_on

D = Decimal
JAN = Period(date(2026, 1, 1), date(2026, 1, 31))
TOKENS = {
    "PAYS": "tok_approved_1",
    "DECLINES": "tok_declined_1",
    "ERRS": "tok_error_1",
    "TIMES-OUT": "tok_timeout_1",
}
COLLECT = RunSettings(collect_payments=True)


def setup_autopay(billing: Billing, tokens: dict[str, str] = TOKENS) -> None:
    import_accounts(billing, *(account(a, package()) for a in [*tokens, "MANUAL"]))
    for account_id, token in tokens.items():
        receivables = billing.get_receivables(account_id)
        receivables.set_autopay(token, billing.clock())
        billing.save(receivables)


def execute(billing: Billing, run_id: str, period: Period, settings: RunSettings) -> None:
    schedule_run(billing, run_id, period, None, Selection(), settings)
    BillRunExecutor(billing, batch_size=2, gateway=SandboxGateway(_datastore(billing))).execute(
        run_id
    )


def _datastore(billing: Billing):  # type: ignore[no-untyped-def]
    return billing.recorder.datastore  # type: ignore[attr-defined]


def test_a_run_collects_from_auto_pay_accounts_by_their_gateway_s_answer(
    billing: Billing,
) -> None:
    setup_autopay(billing)
    execute(billing, "jan", JAN, COLLECT)
    run = billing.get_run("jan")
    stats = run.collection
    assert (stats.attempts, stats.approved, stats.declined, stats.errors, stats.pending) == (
        4, 1, 1, 1, 1,
    )  # fmt: skip
    assert stats.collected == {"EUR": D("100.00")}
    assert billing.get_receivables("PAYS").balance == 0
    assert billing.get_receivables("DECLINES").balance == D("100.00")
    assert billing.get_receivables("MANUAL").attempts == {}
    charged = SandboxGateway(_datastore(billing)).charges()
    assert sorted(c[1] for c in charged) == [D("100.00"), D("100.00")]  # PAYS and TIMES-OUT
    step = next(s for s in run_steps(run) if s["step"] == "collect_payments")
    assert step["ran"] and step["approved"] == 1


def test_re_executing_or_repeating_collection_never_charges_twice(billing: Billing) -> None:
    setup_autopay(billing)
    execute(billing, "jan", JAN, COLLECT)
    BillRunExecutor(billing, 2, gateway=SandboxGateway(_datastore(billing))).execute("jan")
    # A collection-only run the same day: PAYS owes nothing, DECLINES waits for its
    # retry date, TIMES-OUT is reconciled (it was charged) instead of charged again.
    collect_only = RunSettings(
        collect_payments=True, bill_packages=False, bill_usage=False, bill_charges=False,
        run_contracts=False, run_invoices=False,
    )  # fmt: skip
    execute(billing, "jan-collect", Period(JAN.end, JAN.end), collect_only)
    assert SandboxGateway(_datastore(billing)).charges().__len__() == 2
    assert billing.get_receivables("TIMES-OUT").balance == 0
    assert billing.get_receivables("TIMES-OUT").pending_attempt is None
    declined = billing.get_receivables("DECLINES")
    assert [a.outcome for a in declined.attempts.values()] == [GatewayOutcome.DECLINED]
    # On its retry date it is tried again (and declined again).
    retry_on = next(iter(declined.attempts.values())).retry_on
    assert retry_on == JAN.end + timedelta(days=1)
    execute(billing, "retry", Period(retry_on, retry_on), collect_only)
    assert len(billing.get_receivables("DECLINES").attempts) == 2


def test_collection_by_due_date_collects_only_invoices_that_are_due(billing: Billing) -> None:
    setup_autopay(billing, {"PAYS": "tok_approved_2"})
    execute(billing, "jan", JAN, RunSettings(collect_payments=False))
    due_only = RunSettings(
        collect_payments=True, collection_type=CollectionType.INVOICE_DUE_DATE,
        bill_packages=False, bill_usage=False, bill_charges=False, run_contracts=False,
    )  # fmt: skip
    execute(billing, "early", Period(date(2026, 2, 10), date(2026, 2, 10)), due_only)
    assert billing.get_receivables("PAYS").attempts == {}  # due on 2026-03-02
    execute(billing, "due", Period(date(2026, 3, 2), date(2026, 3, 2)), due_only)
    assert billing.get_receivables("PAYS").balance == 0


CRASH_AFTER_CHARGE = textwrap.dedent(
    """
    import os, sys
    from application.runs.executor import BillRunExecutor
    from infrastructure.payment_gateway import SandboxGateway
    from tests.integration.helpers import billing_on

    class CrashAfterCharge(SandboxGateway):
        def charge(self, *args, **kwargs):
            super().charge(*args, **kwargs)
            os._exit(9)  # dies after the gateway charged, before billrun records it

    with billing_on(sys.argv[1]) as billing:
        gateway = CrashAfterCharge(billing.recorder.datastore)
        BillRunExecutor(billing, batch_size=2, gateway=gateway).execute("jan")
    """
)


def test_a_crash_between_the_gateway_s_charge_and_its_recording_never_charges_twice(
    database_url: str,
) -> None:
    with billing_on(database_url) as billing:
        setup_autopay(billing, {"PAYS": "tok_approved_3", "ALSO-PAYS": "tok_approved_4"})
        schedule_run(billing, "jan", JAN, None, Selection(), COLLECT)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_CHARGE, database_url],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr
    with billing_on(database_url) as billing:
        gateway = SandboxGateway(_datastore(billing))
        assert len(gateway.charges()) == 1  # charged, not recorded
        pending = [a for a in ("PAYS", "ALSO-PAYS") if billing.get_receivables(a).pending_attempt]
        assert len(pending) == 1
        BillRunExecutor(billing, batch_size=2, gateway=gateway).execute("jan")
        assert len(gateway.charges()) == 2  # one each: the crashed one reconciled
        for account_id in ("PAYS", "ALSO-PAYS"):
            receivables = billing.get_receivables(account_id)
            assert receivables.balance == 0
            assert len(receivables.payments) == 1
        assert billing.get_run("jan").collection.approved == 2


def test_a_timeout_is_reconciled_on_demand_from_the_gateway_s_records(billing: Billing) -> None:
    setup_autopay(billing, {"TIMES-OUT": "tok_timeout_2"})
    execute(billing, "jan", JAN, COLLECT)
    assert billing.get_receivables("TIMES-OUT").pending_attempt is not None
    collector = Collector(billing, SandboxGateway(_datastore(billing)))
    attempt = collector.reconcile_account("TIMES-OUT", JAN.end)
    assert attempt is not None and attempt.outcome is GatewayOutcome.APPROVED
    assert billing.get_receivables("TIMES-OUT").balance == 0
    assert collector.reconcile_account("TIMES-OUT", JAN.end) is None


def test_a_run_that_collects_does_not_start_when_its_gateway_cannot_be_loaded(
    es_env: dict[str, str],
) -> None:
    billing = Billing(es_env)
    billing.payment_gateway = Settings.from_environment(
        {"BILLRUN_PAYMENT_GATEWAY": "no_such_module:gateway"}
    ).payment_gateway
    try:
        setup_autopay(billing, {"PAYS": "tok_approved_5"})
        schedule_run(billing, "jan", JAN, None, Selection(), COLLECT)
        report = check_run(billing, "jan")
        assert [f.check for f in report.errors] == ["no_payment_gateway"]
        assert "no_such_module" in report.errors[0].message
        with pytest.raises(RunCheckFailed, match="cannot load"):
            BillRunExecutor(billing, batch_size=2).execute("jan")
        assert billing.get_run("jan").is_scheduled  # nothing written
    finally:
        billing.close()


def test_two_executors_racing_on_a_collecting_run_charge_each_account_once(
    database_url: str,
) -> None:
    tokens = {f"CARD-{n}": f"tok_approved_race_{n}" for n in range(8)}
    with billing_on(database_url) as billing:
        setup_autopay(billing, tokens)
        schedule_run(billing, "jan", JAN, None, Selection(), COLLECT)
    errors: list[BaseException] = []

    def execute() -> None:
        try:
            with billing_on(database_url) as mine:
                gateway = SandboxGateway(_datastore(mine))
                BillRunExecutor(mine, batch_size=1, gateway=gateway).execute("jan")
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=execute) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with billing_on(database_url) as billing:
        charged = SandboxGateway(_datastore(billing)).charges()
        assert len(charged) == len(tokens)
        for account_id in tokens:
            receivables = billing.get_receivables(account_id)
            assert (receivables.balance, len(receivables.payments)) == (0, 1)
        assert billing.get_run("jan").collection.approved == len(tokens)
