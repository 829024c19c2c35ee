"""Contract penalties through real bill runs on PostgreSQL: each billed once, onto the
run's invoice, however often the run is executed and whichever later runs follow."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from application.billing.transactions import (
    ContractInput,
    TerminationInput,
    agree_contracts,
    terminate_contracts,
)
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.contracts import ContractTerms
from domain.billing.events import ContractPenaltyApplied
from domain.billing.lines import LineKind
from domain.invoicing.invoice import Invoice
from domain.runs.settings import RunSettings, Selection
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from tests.conftest import account, import_accounts, package
from tests.integration.helpers import EventLog

Q1 = Period(date(2026, 1, 1), date(2026, 3, 31))
APRIL = Period(date(2026, 4, 1), date(2026, 4, 30))


def terms(contract_id: str, **values: object) -> ContractTerms:
    return ContractTerms.model_validate(
        {"contract_id": contract_id, "start_date": date(2026, 1, 1), "term_months": 12,
         "description": f"Contract {contract_id}", **values}
    )  # fmt: skip


def execute(billing: Billing, run_id: str, period: Period, **settings: bool) -> None:
    schedule_run(billing, run_id, period, None, Selection(), RunSettings(**settings))
    assert BillRunExecutor(billing, batch_size=2).execute(run_id).run.is_completed


def penalty_lines(billing: Billing, run_id: str, account_id: str) -> list[tuple[str, Decimal]]:
    loaded = billing.load_many(Invoice, [invoice_uuid(run_id, account_id)])
    return [
        (line.source, line.amount)
        for invoice in loaded.values()
        for line in invoice.lines
        if line.kind is LineKind.PENALTY
    ]


def test_a_penalty_is_billed_once_whatever_runs_follow(billing: Billing, log: EventLog) -> None:
    import_accounts(
        billing,
        account("ACME-001", package("office", "100.00")),
        account("BETA-002", package("office", "80.00")),
        account("CORP-003", package("office", "50.00")),
    )
    agree_contracts(
        billing,
        [
            ContractInput("1", "ACME-001", terms("C-FEE", package_id="office",
                                                 early_termination_fee="150.00")),
            ContractInput("2", "BETA-002", terms("C-MIN", term_months=3, minimum_spend="300.00")),
        ],
        "test",
    )  # fmt: skip
    terminate_contracts(
        billing, [TerminationInput("1", "ACME-001", "C-FEE", date(2026, 2, 15))], "t"
    )

    execute(billing, "2026-Q1", Q1)
    assert BillRunExecutor(billing, batch_size=1).execute("2026-Q1").run.is_completed  # again
    execute(billing, "2026-Q1-again", Q1)  # another run over the same period
    execute(billing, "2026-04", APRIL)

    # ACME: terminated on Feb 15, within its 12 months: the fee. BETA: 3 x 80.00 = 240.00
    # billed within its 3-month term, 300.00 committed: 60.00 short.
    assert penalty_lines(billing, "2026-Q1", "ACME-001") == [("contract:C-FEE", Decimal("150.00"))]
    assert penalty_lines(billing, "2026-Q1", "BETA-002") == [("contract:C-MIN", Decimal("60.00"))]
    assert penalty_lines(billing, "2026-Q1", "CORP-003") == []
    for run_id in ("2026-Q1-again", "2026-04"):
        for account_id in ("ACME-001", "BETA-002"):
            assert penalty_lines(billing, run_id, account_id) == []
    applied = log.states(ContractPenaltyApplied)
    assert sorted((s["contract_id"], s["reason"], s["amount"]) for s in applied) == [
        ("C-FEE", "early_termination", "150.00"),
        ("C-MIN", "commitment_shortfall", "60.00"),
    ]
    acme = billing.get_account("ACME-001")
    assert acme.contracts["C-FEE"].penalties.keys() == {"early_termination"}
    assert billing.get_account("BETA-002").contract_spend("C-MIN") == Decimal("240.00")


def test_a_run_without_the_contract_step_leaves_the_penalty_to_the_next_run(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(billing, account("ACME-001", package("office", "100.00")))
    agree_contracts(
        billing,
        [ContractInput("1", "ACME-001", terms("C1", package_id="office", term_months=3,
                                              minimum_spend="400.00"))],
        "test",
    )  # fmt: skip

    execute(billing, "2026-Q1", Q1, run_contracts=False)
    assert log.count(ContractPenaltyApplied) == 0
    execute(billing, "2026-04", APRIL)  # its period starts after the term: applied all the same

    assert penalty_lines(billing, "2026-04", "ACME-001") == [("contract:C1", Decimal("100.00"))]
    assert log.count(ContractPenaltyApplied) == 1
