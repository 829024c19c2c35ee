"""`billrun invoice approve|quarantine|unquarantine|reject|cancel` as an operator runs
them: a run whose bill group has review rules, then actions by filter and by number."""

from __future__ import annotations

import json
from pathlib import Path

from application.shared.app import Billing
from domain.invoicing.review import ReviewStatus
from domain.shared.ids import invoice_uuid
from tests.conftest import account, package
from tests.e2e.conftest import Cli


def test_reviewing_a_runs_invoices_by_filter_from_the_command_line(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    document = {
        "bill_groups": [
            {
                "id": "strict",
                "quarantine_above": "500.00",
                "reject_negative": True,
                "quarantine_without_email": True,
            },
        ],
        "accounts": [
            account("BIG", package("office", "900.00"), bill_group="strict"),
            account("NOMAIL", package("office", "100.00"), bill_group="strict", email=None),
            account("FINE", package("office", "100.00"), bill_group="strict"),
            account("ALSO", package("office", "200.00"), bill_group="strict"),
        ],
    }
    (tmp_path / "accounts.json").write_text(json.dumps(document))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31",
           "--approval-required")  # fmt: skip
    assert store.get_run("jan").settings.approval_required
    cli.ok("run", "execute", "jan", "--json")

    quarantined = cli.json("invoice", "list", "--run", "jan", "--status", "quarantined", "--json")
    assert sorted(i["account"] for i in quarantined) == ["BIG", "NOMAIL"]
    assert {i["review_status"] for i in quarantined} == {"quarantined"}

    # Approving the whole run: the drafts change, the quarantined ones are refused.
    approved = cli("invoice", "approve", "--run", "jan")
    assert approved.returncode == 1, approved.stderr
    lines = approved.stdout.splitlines()
    assert lines[0] == "approve: 2 changed, 2 refused"
    assert len(lines) == 3  # one line per refusal, never wrapped
    assert all(
        line.startswith("refused INV-") and "is quarantined: it cannot be approved" in line
        for line in lines[1:]
    )

    # A reason is required to reject: refused whole, nothing written.
    head = store.queries.head()
    missing = cli("invoice", "reject", "--run", "jan", "--status", "quarantined")
    assert missing.returncode == 2 and "--reason is required to reject" in missing.stderr
    assert store.queries.head() == head

    rejected = cli.json("invoice", "reject", "--run", "jan", "--status", "quarantined",
                        "--reason", "not ordered", "--json")  # fmt: skip
    assert (rejected["changed"], rejected["unchanged"], rejected["refused"]) == (2, 0, 0)
    assert {i["review_status"] for i in rejected["invoices"]} == {"rejected"}

    # By number: an approved invoice is final.
    big = store.get_invoice(invoice_uuid("jan", "BIG"))
    fine = store.get_invoice(invoice_uuid("jan", "FINE"))
    cancel = cli("invoice", "cancel", str(fine.number), "--reason", "duplicate")
    assert cancel.returncode == 1
    assert "approved invoices are final" in cancel.stdout
    assert store.get_invoice(fine.id).review_status is ReviewStatus.APPROVED

    shown = cli.json("invoice", "show", big.display_number or "", "--json")
    assert (shown["review_status"], shown["review_reason"]) == ("rejected", "not ordered")
    assert [(v["rule"], v["action"]) for v in shown["verdicts"]] == [
        ("reject_negative", "pass"),
        ("quarantine_above", "quarantine"),
        ("quarantine_without_email", "pass"),
    ]
    table = cli.ok("invoice", "show", big.display_number or "").stdout
    assert "review: rejected (operator: not ordered)" in table
    assert "quarantine_above" in table
