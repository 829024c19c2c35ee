"""Tenants through the `billrun` executable: two billing books in one database that
never see each other, the default book untouched, API keys shown once, and every
write recording who made it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli


def _bill(cli: Cli, tenant: str, run_id: str) -> list[dict[str, object]]:
    cli.ok("--tenant", tenant, "import", "accounts.json")
    cli.ok(
        "run", "schedule", run_id, "--period-start", "2026-01-01",
        "--period-end", "2026-01-31", "--tenant", tenant,
    )  # fmt: skip
    cli.ok("run", "execute", run_id, "--tenant", tenant)
    invoices: list[dict[str, object]] = cli.json("invoice", "list", "--json", "--tenant", tenant)
    return invoices


def test_two_tenants_in_one_database_never_see_each_other(cli: Cli, tmp_path: Path) -> None:
    cli.ok("tenant", "create", "acme")
    cli.ok("tenant", "create", "beta")
    write_import_file(tmp_path, account("ACME-001", package("office", "100.00")),
                      account("ACME-002", package("desk", "50.00")))  # fmt: skip
    acme = _bill(cli, "acme", "2026-01")
    write_import_file(tmp_path, account("BETA-001", package("locker", "9.00")))
    beta = _bill(cli, "beta", "2026-01")

    # Each book numbers its own invoices from 1; the same run id lives in both.
    assert [i["number"] for i in acme] == [1, 2]
    assert [i["number"] for i in beta] == [1]
    assert {i["account"] for i in acme} == {"ACME-001", "ACME-002"}
    assert {i["account"] for i in beta} == {"BETA-001"}
    # One book's account and run do not exist in the other's, nor in the default's.
    refused = cli("account", "show", "ACME-001", "--tenant", "beta")
    assert refused.returncode == 2
    assert "ACME-001" in refused.stderr
    assert [r["run_id"] for r in cli.json("run", "list", "--json", "--tenant", "acme")] == [
        "2026-01"
    ]
    assert cli.json("invoice", "list", "--json") == []
    assert cli.json("run", "list", "--json") == []
    # The environment variable chooses the book as --tenant does.
    env_cli = Cli(cwd=cli.cwd, env={**cli.env, "BILLRUN_TENANT": "beta"})
    assert [i["account"] for i in env_cli.json("invoice", "list", "--json")] == ["BETA-001"]


def test_the_default_book_keeps_working_beside_tenants(cli: Cli, tmp_path: Path) -> None:
    write_import_file(tmp_path, account("OLD-001", package("office", "10.00")))
    cli.ok("import", "accounts.json")
    cli.ok("tenant", "create", "acme")
    assert [t["name"] for t in cli.json("tenant", "list", "--json")] == ["acme", "default"]
    assert cli.json("account", "show", "OLD-001", "--json")["id"] == "OLD-001"
    assert cli("account", "show", "OLD-001", "--tenant", "acme").returncode == 2


def test_a_tenant_is_created_once_and_an_unknown_or_bad_one_is_refused(cli: Cli) -> None:
    cli.ok("tenant", "create", "acme")
    twice = cli("tenant", "create", "acme")
    assert (twice.returncode, twice.stderr.strip()) == (
        2, "error: tenant 'acme' exists already: nothing was changed"
    )  # fmt: skip
    bad = cli("tenant", "create", "Acme")
    assert bad.returncode == 2
    assert "'Acme' is not a tenant name" in bad.stderr
    unknown = cli("invoice", "list", "--tenant", "nope")
    assert unknown.returncode == 2
    assert "tenant 'nope' does not exist" in unknown.stderr


def test_an_api_key_is_shown_once_listed_without_its_secret_and_revoked(cli: Cli) -> None:
    cli.ok("tenant", "create", "acme")
    created = cli.ok("apikey", "create", "--tenant", "acme", "--role", "operator", "--name", "ops")
    raw = created.stdout.strip()
    assert raw.startswith("brk_")
    listed = cli.json("apikey", "list", "--json")
    assert [(k["tenant"], k["role"], k["name"], k["revoked_at"]) for k in listed] == [
        ("acme", "operator", "ops", None)
    ]
    assert raw[len("brk_000000000000_") :] not in cli.ok("apikey", "list").stdout
    key_id = listed[0]["key_id"]
    assert raw.startswith(f"brk_{key_id}_")
    revoked = cli.json("apikey", "revoke", key_id, "--json")
    assert revoked["revoked_at"] is not None
    bad_role = cli("apikey", "create", "--tenant", "acme", "--role", "root")
    assert bad_role.returncode == 2


def test_history_shows_who_wrote_each_event(cli: Cli, tmp_path: Path) -> None:
    cli.ok("tenant", "create", "acme")
    write_import_file(tmp_path, account("ACME-001", package("office", "100.00")))
    cli.ok("--tenant", "acme", "import", "accounts.json")
    entries = cli.json("history", "--account", "ACME-001", "--json", "--tenant", "acme")
    assert entries
    assert all(e["actor"]["key_id"] == "cli" and e["actor"]["role"] == "admin" for e in entries)
    table = cli.on_terminal("history", "--account", "ACME-001", "--tenant", "acme")
    assert " by " in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
