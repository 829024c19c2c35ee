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
    assert "run jan equals its preview (same digest)" in executed
    assert "Draft invoices of run jan: 2" in executed
    status = cli.json("run", "status", "jan", "--json")
    assert status["description"] == "January, checked"
    assert status["preview"] == "equals its preview (same digest)"
    steps = {step["step"]: step for step in status["step_log"]}
    assert steps["bill_packages"]["lines"] == 2 and steps["run_invoices"]["invoices_closed"] == 2


def test_the_preview_details_each_invoice_and_account_with_tax_and_says_what_differs(
    cli: Cli, tmp_path: Path
) -> None:
    document = {
        "accounts": [
            {**account("HQ", package("office", "100.00")), "tax_rate": "20"},
            {**account("SHOP", package("desk", "50.00")), "tax_rate": "20"},
            {**account("SOLO", package("office", "10.00")), "tax_rate": "0"},
        ],
    }
    (tmp_path / "accounts.json").write_text(json.dumps(document))
    cli.ok("import", "accounts.json")
    cli.ok("account", "invoicer", "SHOP", "HQ")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")

    preview = cli.json("run", "preview", "jan", "--json")
    assert (preview["invoices"], preview["lines"]) == (2, 3)
    invoices = {i["account"]: i for i in preview["invoices_detail"]}
    shown_keys = ("currency", "lines", "net", "tax", "gross", "closes")
    assert {k: invoices["HQ"][k] for k in shown_keys} == {
        "currency": "EUR", "lines": 2, "net": "150.00", "tax": "30.00", "gross": "180.00",
        "closes": True,
    }  # fmt: skip
    assert (invoices["SOLO"]["net"], invoices["SOLO"]["tax"]) == ("10.00", "0.00")
    accounts = {(a["account"], a["currency"]): a for a in preview["accounts_detail"]}
    assert [(a, accounts[(a, "EUR")]["net"], accounts[(a, "EUR")]["tax"]) for a in
            ("HQ", "SHOP", "SOLO")] == [
        ("HQ", "100.00", "20.00"), ("SHOP", "50.00", "10.00"), ("SOLO", "10.00", "0.00"),
    ]  # fmt: skip
    shown = cli.ok("run", "preview", "jan").stdout
    assert "Invoices previewed for run jan: 2" in shown
    assert "Accounts previewed for run jan: 3" in shown and "180.00" in shown

    charge = ["charge", "add", "SOLO", "--id", "late", "--amount", "7.50", "--date", "2026-01-20"]
    cli.ok(*charge, "--description", "Late fee")
    executed = cli.ok("run", "execute", "jan").stdout
    assert "run jan differs from its preview: lines: previewed 3, billed 4" in " ".join(
        executed.split()
    )
    assert " is differs" not in executed
    status = cli.json("run", "status", "jan", "--json")
    assert status["preview"].startswith("differs from its preview")
