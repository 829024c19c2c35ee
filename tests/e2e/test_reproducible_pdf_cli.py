"""The same invoice renders to the same PDF bytes whenever `billrun` renders it: the
process sets SOURCE_DATE_EPOCH when it starts (fontTools would otherwise stamp each
font subset with the current time), so the renderer itself touches no environment."""

from __future__ import annotations

import json
import time
from pathlib import Path

from infrastructure.database import create_database, drop_database
from tests.conftest import account, package
from tests.e2e.conftest import Cli


def _render_invoice(cli: Cli, workdir: Path) -> bytes:
    document = {"accounts": [account("ACME", package("office", "100.00"))]}
    (workdir / "accounts.json").write_text(json.dumps(document))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    cli.ok("run", "execute", "jan", "--json")
    cli.ok("invoice", "pdf", "INV-00000001", "--out", str(workdir / "invoice.pdf"))
    return (workdir / "invoice.pdf").read_bytes()


def test_an_invoice_rendered_by_two_processes_a_second_apart_has_the_same_bytes(
    cli: Cli, postgres_server: str, tmp_path: Path
) -> None:
    cli.env.pop("SOURCE_DATE_EPOCH", None)  # as an operator's shell has it: unset
    first = _render_invoice(cli, tmp_path)
    time.sleep(1.1)  # fontTools' timestamps are in seconds
    other_database = create_database(postgres_server)
    try:
        other = Cli(tmp_path / "other", {**cli.env, "BILLRUN_DATABASE_URL": other_database})
        other.cwd.mkdir()
        second = _render_invoice(other, other.cwd)
    finally:
        drop_database(other_database)
    assert first.startswith(b"%PDF") and first == second
