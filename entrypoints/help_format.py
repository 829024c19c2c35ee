"""`--help` that keeps option names whole on an 80-column terminal.

typer lays an options panel out as a rich table (names, negative names, type,
help) and lets rich shrink every column alike when the terminal is narrow, so
`billrun run schedule --help` printed "--approval-req…" and "--collect-paym…".
This swaps the table class typer's help module uses for one that, when it is
rendered, keeps the name columns whole and shares the rest of the width between
the type and the help text (output.fit_columns, as billrun's own tables do).

It relies on typer building those panels with `rich_utils.Table` (typer 0.29):
`install()` checks that the name is there and otherwise leaves typer alone.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table

from entrypoints import output


class HelpTable(Table):
    """An options or commands panel whose name columns are never cut."""

    types_dropped = False

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        # Options panels: [required,] long, short, negative long, negative short, type,
        # help. Commands panels: name, help. (Measured within the panel: a help cell
        # grows to whatever width it is given.)
        narrow = output.natural_width(console, self, width) > width
        if len(self.columns) >= 5 and narrow and not self.types_dropped:
            # Too narrow: the type ("<bool>", "<str>") goes first, then empty columns.
            # (Once: rich may render a panel twice, to measure it and to print it.)
            self.types_dropped = True
            kind = self.columns[-2]
            output.drop_columns(
                self, lambda c: c is kind or not any(getattr(x, "plain", x) for x in c.cells)
            )
        for column in self.columns[:-1]:
            column.no_wrap = True
        if output.natural_width(console, self, width) > width:
            output.fit_columns(console, self, width)
        yield from super().__rich_console__(console, options)


def install() -> None:
    import typer.rich_utils

    module: Any = typer.rich_utils
    if getattr(module, "Table", None) is Table:
        module.Table = HelpTable
