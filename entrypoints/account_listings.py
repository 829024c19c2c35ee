"""`charge list` and `usage list`: one command shape for an account's records.

Both take an account, `--unbilled` and `--json`, read the account with what
discarded runs wrote off, and print the rows as JSON or as a compact table. The
command is registered here once, so its signature, refusals and output cannot
drift between the two; each listing states only its rows and columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import typer

from application.runs.cancel import WrittenOff
from domain.billing.account import Account
from entrypoints import output
from entrypoints.common import AccountArgument, JsonFlag, UnbilledFlag, refusals
from entrypoints.presenters import account_with_written_off

Row = dict[str, Any]


@dataclass(frozen=True)
class AccountListing:
    """What one `list` command shows of an account's records."""

    title: str
    """The table's title before ` of ACCOUNT (CURRENCY)`, e.g. `Charges`."""
    rows: Callable[[Account, WrittenOff], list[Row]]
    """Every record as its JSON row (with `billed`), in the order listed."""
    columns: Sequence[str]
    cells: Callable[[Account, Row], Sequence[str]]
    """A row's table cells, one per column."""
    numeric: Sequence[str] = ()
    """Columns aligned right."""
    wrapped: Sequence[str] = ("description",)
    """Columns that may wrap (the others never do)."""
    droppable: Sequence[str] = ()
    """Columns left out first when the terminal is narrow."""

    def show(self, account_id: str, unbilled: bool, json_out: bool) -> None:
        stored, written = account_with_written_off(account_id)
        rows = [row for row in self.rows(stored, written) if not (unbilled and row["billed"])]
        if json_out:
            output.print_json(rows)
            return
        table = output.compact_table(f"{self.title} of {stored.account_id} ({stored.currency})")
        for column in self.columns:
            table.add_column(
                column,
                justify="right" if column in self.numeric else "left",
                no_wrap=column not in self.wrapped,
            )
        for row in rows:
            table.add_row(*self.cells(stored, row))
        output.print_table(table, droppable=tuple(self.droppable))


def add_list_command(app: typer.Typer, listing: AccountListing, help_text: str) -> None:
    """Register `list` on `app`, with `help_text` as its --help (as a docstring reads)."""

    @app.command("list", help=help_text)
    @refusals
    def list_records(
        account: AccountArgument,
        unbilled: UnbilledFlag = False,
        json_out: JsonFlag = False,
    ) -> None:
        listing.show(account, unbilled, json_out)
