"""What an adversary (or a careless operator) broke, as a user meets it through the
CLI: statistics that disagree with what a run did, a locked events table, a
terminated connection."""

from __future__ import annotations

from application.billing import Billing
from tests.conftest import account, package
from tests.e2e.conftest import Cli
from tests.integration.test_close_types import configure


def test_run_status_counts_no_invoice_left_open_after_the_closing_pass_closed_them(
    cli: Cli, store: Billing
) -> None:
    configure(
        store, "after_each_bill_run", *(account(f"A-{i}", package("p", "10.00")) for i in range(3))
    )
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    cli.ok("run", "execute", "jan")

    status = cli.json("run", "status", "jan", "--json")
    text = " ".join(cli.ok("run", "status", "jan").stdout.split())

    assert (status["status"], status["invoices"], status["invoices_left_open"]) == (
        "completed", 3, 0,
    )  # fmt: skip
    assert "│ invoices left open │ 0 │" in text, text
