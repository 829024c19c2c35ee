"""Printing for people (rich tables) and for programs (JSON on stdout).

The money formatting imports `domain.shared.money` when first used: `billrun --help`
fits its option tables with this module's table helpers, and importing the
domain there (pydantic with it) cost 35 ms of its start (bench/startup.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from rich import box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from entrypoints import consoles

# Every command prints through these two (kept in `consoles` for logging's sake).
console = consoles.console
errors = consoles.errors


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        from domain.shared.money import plain

        return plain(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(value: Any) -> None:
    """`value` as indented JSON on stdout (UTF-8). orjson, because the standard
    library's encoder is pure Python once it indents: 1 s of `ar aging --json`'s
    1.9 s over 4,900 accounts (docs/benchmarks.md, CLI reads)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(
        orjson.dumps(value, default=_default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        + b"\n"
    )
    sys.stdout.buffer.flush()


def print_json_array(items: Iterable[Any]) -> None:
    """A JSON array written item by item, so a large result never sits in memory."""
    out = sys.stdout
    encode = json.JSONEncoder(default=_default).encode  # what json.dumps makes per call
    first = True
    out.write("[")
    for item in items:
        out.write("\n  " if first else ",\n  ")
        out.write(encode(item))
        first = False
    out.write("]\n" if first else "\n]\n")


def money(amount: Decimal, currency: str) -> str:
    """`1,234.50 EUR`: grouped, at the currency's minor unit, never `1E+2`."""
    return f"{grouped(amount, currency)} {currency}"


def grouped(amount: Decimal, currency: str) -> str:
    """`1,234.50`: an amount of `currency`, grouped, at its minor unit."""
    from domain.shared.money import round_to_currency

    return f"{round_to_currency(amount, currency):,f}"


def number(value: Decimal) -> str:
    """A quantity, unit price, rate or amount in a table cell: plain notation."""
    from domain.shared.money import plain

    return plain(value)


# Tables --------------------------------------------------------------------------------
#
# A table's columns are of two kinds. Columns added with `no_wrap=True` hold what a
# reader copies or compares (ids, numbers, amounts, dates, currencies): their cells
# are never cut or wrapped. The other columns hold prose and may wrap. A table too
# wide for the terminal loses the columns its command names droppable, least
# useful first, rather than have rich squeeze every column ("acc/oun/t", "10…").


def compact_table(title: str | None = None, **options: Any) -> Table:
    """A table with narrow margins and no outer frame, so that an 80-column terminal
    shows as many columns as it can."""
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        **options,
    )


def print_table(table: Table, droppable: Sequence[str] = ()) -> None:
    """Print `table` on stdout without cutting or wrapping a cell of a no_wrap column.

    On a terminal too narrow for every column, the columns whose headers are named
    in `droppable` are left out, the first named first, until the rest fits (prose
    columns wrapping); if it still does not fit, the lines run past the edge rather
    than cut a cell. Piped or redirected, every column is printed at its natural
    width, one line per row, for programs and `grep` to read.
    """
    if not console.is_terminal:
        lines = plain_lines(table)
        if lines is None:  # a cell rich must draw: as wide as it needs, unwrapped
            _print_at_width(table, natural_width(console, table))
        else:
            sys.stdout.write("".join(line + "\n" for line in lines))
        return
    width = console.width
    left = list(droppable)
    while least_width(console, table) > width and left:
        header = left.pop(0)
        drop_columns(table, lambda column, header=header: column.header == header)  # type: ignore[misc]
    if natural_width(console, table) <= width:
        console.print(table)
        return
    width = max(width, least_width(console, table))
    fit_columns(console, table, width)
    _print_at_width(table, width)


# Measured within this width unless told otherwise: wider than any line of a table.
UNBOUNDED = 100_000


def _plain(cell: RenderableType) -> str | None:
    """A cell's text without its markup and styles; None for anything but text."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain if "[" in cell else cell
    return None


def _cell_widths(on: Console, column: Column, within: int = UNBOUNDED) -> tuple[int, int]:
    """The column's widest cell (header included) and its longest word, unpadded."""
    widest = word = 1
    cells: list[RenderableType] = [column.header, *column.cells]
    for cell in cells:
        text = _plain(cell)
        if text is None:
            measured = Measurement.get(on, on.options.update_width(within), cell)
            widest, word = max(widest, measured.maximum), max(word, measured.minimum)
            continue
        # Text measured directly: rich's Measurement costs ~20 us a cell, seconds
        # for a table of thousands of rows.
        for line in text.split("\n"):
            widest = max(widest, cell_len(line))
            word = max(word, *(cell_len(w) for w in line.split() or [""]))
    return min(widest, within), min(word, within)


def plain_lines(table: Table) -> list[str] | None:
    """The table as plain text: its title, the header, a rule and one line per row
    (cells of several lines take as many), columns two spaces apart at their widest
    cell, nothing wrapped or cut. None when a cell is not text."""
    columns = table.columns
    texts: list[list[str]] = []
    for column in columns:
        plain = [_plain(cell) for cell in [column.header, *column.cells]]
        if any(text is None for text in plain):
            return None
        texts.append([text or "" for text in plain])
    widths = [max(_width(line) for text in cells for line in text.split("\n")) for cells in texts]
    right = [column.justify == "right" for column in columns]

    def lines_of(row: int) -> list[str]:
        cells = [column[row] for column in texts]
        if not any("\n" in cell for cell in cells):  # one line: nearly every row
            aligned = map(_pad, cells, widths, right)
            return ["  ".join(aligned).rstrip()]
        split = [cell.split("\n") for cell in cells]
        height = max(len(parts) for parts in split)
        return [
            "  ".join(
                _pad(parts[index] if index < len(parts) else "", width, to_right)
                for parts, width, to_right in zip(split, widths, right, strict=True)
            ).rstrip()
            for index in range(height)
        ]

    lines = [] if table.title is None else [_plain(table.title) or ""]
    if table.show_header:
        lines += lines_of(0)
        lines.append("─" * (sum(widths) + 2 * max(len(widths) - 1, 0)))
    rows = len(texts[0]) if texts else 1
    for row in range(1, rows):
        lines += lines_of(row)
    if table.caption is not None:
        lines.append(_plain(table.caption) or "")
    return lines


def _width(text: str) -> int:
    """The cells `text` takes: its length when it is printable ASCII (nearly every
    cell, one cell a character), else rich's measure. Measuring each cell with
    rich was a quarter of `billrun ar aging` over 4,900 accounts."""
    return len(text) if text.isascii() and text.isprintable() else cell_len(text)


def _pad(text: str, width: int, to_right: bool) -> str:
    """`text` padded with spaces to `width` cells, on the left when `to_right`."""
    pad = " " * (width - _width(text))
    return pad + text if to_right else text + pad


def _least_prose(widest: int, word: int) -> int:
    """The narrowest a prose column gets: its longest word, at least 8 and at most
    16 wide (a longer word folds), and never wider than its widest cell."""
    return min(widest, max(8, min(word, 16)))


def _overhead(table: Table) -> int:
    """Borders and padding: measured on a table of the same make with one-character
    cells (measuring the table itself would stretch a cell that fills its width)."""
    blank = Table(
        box=table.box,
        padding=table.padding,
        pad_edge=table.pad_edge,
        collapse_padding=table.collapse_padding,
        show_edge=table.show_edge,
        show_header=False,
    )
    blank.add_row(*("x" for _ in table.columns))
    return Measurement.get(console, console.options.update_width(UNBOUNDED), blank).maximum - len(
        table.columns
    )


def natural_width(on: Console, table: Table, within: int = UNBOUNDED) -> int:
    """The table's width with no cell wrapped (cells measured within `within`)."""
    return _overhead(table) + sum(_cell_widths(on, c, within)[0] for c in table.columns)


def least_width(on: Console, table: Table) -> int:
    """The narrowest the table can be with its no_wrap cells whole."""
    least = _overhead(table)
    for column in table.columns:
        widest, word = _cell_widths(on, column)
        least += widest if column.no_wrap else _least_prose(widest, word)
    return least


def fit_columns(on: Console, table: Table, width: int) -> None:
    """Fix the columns' widths for a table `width` wide: no_wrap columns get their
    widest cell, and the prose columns share what is left, each at least
    `_least_prose`, more to those with more to say."""
    measured = [(column, *_cell_widths(on, column, width)) for column in table.columns]
    prose = [(c, top, _least_prose(top, word)) for c, top, word in measured if not c.no_wrap]
    spare = width - _overhead(table)
    spare -= sum(widest for c, widest, _ in measured if c.no_wrap)
    spare -= sum(least for _, _, least in prose)
    wanted = sum(widest - least for _, widest, least in prose)
    if spare < 0:
        return  # too narrow even so: leave the layout to rich
    for column, widest, _ in measured:
        if column.no_wrap:
            column.width = widest
    for column, widest, least in prose:
        extra = (widest - least) * spare // wanted if wanted else 0
        column.width = min(widest, least + extra)


def drop_columns(table: Table, dropped: Callable[[Column], bool]) -> None:
    table.columns[:] = [column for column in table.columns if not dropped(column)]
    for index, column in enumerate(table.columns):
        # rich pads a column by its position (the first and the last differ).
        column._index = index


def _print_at_width(table: Table, width: int) -> None:
    saved = console.width
    console.width = width
    try:
        console.print(table)
    finally:
        console.width = saved
