"""Configuration reaches billrun from the environment through `Settings` alone."""

from __future__ import annotations

from pathlib import Path

from application.shared.app import Billing
from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli


def with_env(cli: Cli, **variables: str) -> Cli:
    return Cli(cwd=cli.cwd, env={**cli.env, **variables})


def test_bad_payment_terms_in_the_environment_are_refused_naming_the_variable(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("ACME-001", package()))
    head = store.queries.head()
    refused = with_env(cli, BILLRUN_PAYMENT_TERMS_DAYS="thirty")("import", "accounts.json")
    assert refused.returncode == 2
    assert "BILLRUN_PAYMENT_TERMS_DAYS: not a whole number: 'thirty'" in refused.stderr
    assert store.queries.head() == head, "nothing written"


def test_the_payment_gateway_named_in_the_environment_is_the_one_asked(cli: Cli) -> None:
    refused = with_env(cli, BILLRUN_PAYMENT_GATEWAY="no_such_module:gateway")(
        "payment", "reconcile", "--json"
    )
    assert refused.returncode == 2
    assert "BILLRUN_PAYMENT_GATEWAY: cannot load 'no_such_module:gateway'" in refused.stderr


def test_a_stray_event_store_variable_in_the_shell_does_not_change_how_events_are_stored(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    # The library would lay the whole process environment under its configuration:
    # a compressor set in the shell would store events zlib-compressed, unreadable
    # to the relay and to every billrun process without the variable.
    write_import_file(tmp_path, account("ACME-001", package()))
    with_env(cli, COMPRESSOR_TOPIC="eventsourcing.compressor:ZlibCompressor").ok(
        "import", "accounts.json"
    )
    assert store.get_account("ACME-001").id is not None
