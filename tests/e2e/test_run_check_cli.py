"""`billrun run check|preview|describe` and `run execute --show-drafts`, as an
operator runs them before and after a run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import account, package
from tests.e2e.conftest import Cli


def test_check_preview_execute_and_review_a_run(cli: Cli, tmp_path: Path) -> None:
    document = {
        "bill_groups": [{"id": "mailed", "delivery": "email"}],
        "accounts": [
            account("A", package("office", "100.00"), bill_group="mailed"),
            {**account("B", package("desk", "50.00"), bill_group="mailed"), "invoice_email": None},
        ],
    }
    (tmp_path / "accounts.json").write_text(json.dumps(document))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")

    checked = cli("run", "check", "jan", "--json")
    assert checked.returncode == 1  # errors remain
    report = json.loads(checked.stdout)
    assert [(e["check"], e["accounts"]) for e in report["errors"]] == [("no_invoice_email", ["B"])]
    refused = cli("run", "execute", "jan")
    assert refused.returncode != 0 and "no invoice email" in refused.stderr

    document["accounts"][1]["invoice_email"] = "b@example.test"
    (tmp_path / "accounts.json").write_text(json.dumps(document))
    cli.ok("import", "accounts.json")
    assert "0 errors" in cli.ok("run", "check", "jan").stdout

    preview = cli.json("run", "preview", "jan", "--json")
    assert (preview["invoices"], preview["lines"]) == (2, 2)
    assert preview["totals"] == {"EUR": {"recurring": "150.00"}}

    cli.ok("run", "describe", "jan", "January, checked")
    executed = cli.ok("run", "execute", "jan", "--show-drafts").stdout
    assert "equal to its preview" in executed
    assert "Draft invoices of run jan: 2" in executed
    status = cli.json("run", "status", "jan", "--json")
    assert status["description"] == "January, checked"
    assert status["preview"] == "equal to its preview (same digest)"
    steps = {step["step"]: step for step in status["step_log"]}
    assert steps["bill_packages"]["lines"] == 2 and steps["run_invoices"]["invoices_closed"] == 2
