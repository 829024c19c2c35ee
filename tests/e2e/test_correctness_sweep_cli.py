"""Issue 12, the correctness sweep: what a new user meets when a name, a date or an
option is not what they meant, and the `--json` a script reads, through the CLI."""

from __future__ import annotations

from pathlib import Path

from application.billing import Billing
from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli


def test_a_mistyped_group_or_account_is_refused_when_scheduling_naming_close_matches(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(
        tmp_path,
        account("ACME-001", package(), bill_group="retail"),
        account("ACME-002", package(), bill_group="wholesale"),
    )
    cli.ok("import", "accounts.json")
    head = store.queries.head()

    run = cli("run", "schedule", "jan", "--period-start", "2026-01-01",
              "--period-end", "2026-01-31", "--group", "retial")  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--group: no bill group 'retial'" in run.stderr
    assert "did you mean 'retail'?" in run.stderr and "nothing written" in run.stderr

    schedule = cli("schedule", "add", "monthly", "--every", "monthly",
                   "--group", "retail", "--account", "ACME-01")  # fmt: skip
    assert schedule.returncode == 2, schedule.stdout + schedule.stderr
    assert "--account: no account 'ACME-01'" in schedule.stderr
    assert "did you mean 'ACME-001' or 'ACME-002'?" in schedule.stderr
    assert "Traceback" not in run.stderr + schedule.stderr
    assert store.queries.head() == head  # refused: nothing written

    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01",
           "--period-end", "2026-01-31", "--group", "retail")  # fmt: skip
