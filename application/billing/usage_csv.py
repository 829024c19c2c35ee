"""The usage CSV file: one usage record a row, refused whole when any row is bad.

```
account_id,usage_id,package_id,quantity,occurred_on,unit_price,description
ACME-001,u-0001,office,3,2026-01-05,0.50,Printing (pages)
ACME-001,u-0002,office,1.25,2026-01-06,,
```

A header row names the columns, in any order: `account_id`, `usage_id`,
`package_id`, `quantity` and `occurred_on` are required, `unit_price` and
`description` optional (an empty cell takes the package's usage rate, or its
description). Any other column is refused. Fields are separated by commas and
may be quoted as RFC 4180 says; the file is UTF-8, with or without a byte order
mark. Blank lines (and rows of empty cells) are skipped. Numbers are decimals
with a dot (`1.25`; no thousands separators, no exponent) and are read exactly,
never through a binary float; dates are ISO `YYYY-MM-DD`.

Every problem is reported with its line (the line a record starts on; the header
is line 1) and column, e.g. `usage.csv: line 7, quantity: not a decimal: "1,5"`,
so a file can be fixed in one pass. The file is read line by line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from application.billing.transactions import UsageInput
from application.shared.errors import InvalidInput, Problem
from domain.shared.inputs import (
    DateNotInCalendar,
    InputRefused,
    check_text,
    parse_iso_date,
    parse_plain_decimal,
    quoted,
)

REQUIRED_COLUMNS = ("account_id", "usage_id", "package_id", "quantity", "occurred_on")
OPTIONAL_COLUMNS = ("unit_price", "description")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

T = TypeVar("T")


class FieldError(ValueError):
    """A value that is not what its field needs; the message quotes the value."""


class NotInCalendar(FieldError):
    """A well-formed YYYY-MM-DD the calendar does not have (2026-02-30)."""


def parse_decimal(text: str) -> Decimal:
    """An exact decimal in plain notation (`12`, `-0.5`, `1.25`), surrounding spaces
    ignored, within the limits billrun can bill (domain/shared/inputs.py)."""
    try:
        return parse_plain_decimal(text)
    except InputRefused as error:
        raise FieldError(str(error)) from None


def parse_text(text: str, *, identifier: bool = False) -> str:
    """Text billrun can store, print and send (domain/shared/inputs.py), or FieldError."""
    try:
        return check_text(text, identifier=identifier)
    except InputRefused as error:
        raise FieldError(str(error)) from None


def parse_date(text: str) -> date:
    """An ISO calendar date, `YYYY-MM-DD` exactly (not the other forms ISO allows),
    within the dates billrun bills (domain/shared/inputs.py)."""
    try:
        return parse_iso_date(text)
    except DateNotInCalendar as error:
        raise NotInCalendar(str(error)) from None
    except InputRefused as error:
        raise FieldError(str(error)) from None


def parse_usage_csv(data: bytes | Path, source: str | None = None) -> list[UsageInput]:
    """Every usage record of a CSV file (its bytes, or its path), or InvalidInput
    listing every problem. A path that cannot be read raises OSError."""
    if isinstance(data, Path):
        name = str(data) if source is None else source
        with data.open("rb") as file:
            return _parse(file, name)
    # Lines end at \n, as when reading the file itself (csv handles the \r of \r\n).
    return _parse(io.BytesIO(data), "usage.csv" if source is None else source)


def _parse(raw_lines: Iterable[bytes], source: str) -> list[UsageInput]:
    problems: list[Problem] = []
    undecodable: set[int] = set()
    rows = _rows(_decoded(raw_lines, problems, undecodable), problems)
    header = next(rows, None)
    if header is None:
        if not problems:
            problems.append(
                Problem("", f"empty file: expected a header row: {','.join(REQUIRED_COLUMNS)}")
            )
        raise InvalidInput(source, sorted(problems, key=_line_order))
    header_line, _, names = header
    columns = _columns(header_line, names, problems)
    records: list[UsageInput] = []
    seen: dict[tuple[str, str], tuple[int, UsageInput]] = {}
    count = 0
    for line, last_line, fields in rows:
        count += 1
        if columns is None:
            continue  # a bad header: its problems are the ones worth reading
        if any(number in undecodable for number in range(line, last_line + 1)):
            continue  # reported as not UTF-8; its fields would only repeat that
        record = _record(line, fields, columns, problems)
        if record is None:
            continue
        key = (record.account_id, record.usage_id)
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = (line, record)
        elif not _same(earlier[1], record):
            problems.append(
                Problem(
                    f"line {line}, usage_id",
                    f"{quoted(record.usage_id)} of account {quoted(record.account_id)} is also "
                    f"on line {earlier[0]}, with other data",
                )
            )
            continue
        # A row repeated as it is stays in: it is recorded once, counted as a duplicate.
        records.append(record)
    if count == 0 and not problems:
        problems.append(Problem("", f"no usage records: only a header (line {header_line})"))
    if problems:
        raise InvalidInput(source, sorted(problems, key=_line_order))
    return records


def _decoded(
    raw_lines: Iterable[bytes], problems: list[Problem], undecodable: set[int]
) -> Iterator[str]:
    """Lines as text; a line that is not UTF-8 is reported (and noted in
    `undecodable`) and read with replacement characters, so the rest of the file
    is still checked."""
    for number, raw in enumerate(raw_lines, start=1):
        if number == 1 and raw.startswith(_UTF16_BOMS):
            problems.append(Problem("", "the file is UTF-16 text: save it as UTF-8"))
            return
        line = raw.removeprefix(_BOM) if number == 1 else raw
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as error:
            undecodable.add(number)
            problems.append(
                Problem(
                    f"line {number}",
                    f"not UTF-8 text: byte 0x{line[error.start]:02x} at position "
                    f"{error.start + 1} (save the file as UTF-8)",
                )
            )
            yield line.decode("utf-8", errors="replace")


def _rows(lines: Iterator[str], problems: list[Problem]) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of each record, skipping blank rows and
    reporting the ones that are not valid CSV."""
    reader = csv.reader(lines, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            problems.append(Problem(f"line {start}", f"not valid CSV: {error}"))
            continue
        if any(field.strip() for field in fields):
            yield start, reader.line_num, fields


def _columns(line: int, names: list[str], problems: list[Problem]) -> dict[str, int] | None:
    """Column name -> index, or None (and the problems) when the header is bad."""
    found: list[Problem] = []
    columns: dict[str, int] = {}
    for index, raw in enumerate(names):
        name = raw.strip()
        if not name:
            found.append(Problem(f"line {line}", f"column {index + 1} of the header has no name"))
        elif name in columns:
            found.append(Problem(f"line {line}", f"column {quoted(name)} appears twice"))
        elif name not in COLUMNS:
            hint = ""
            if len(names) == 1 and ";" in name:
                hint = " (separate the fields with commas, not semicolons)"
            elif name.lower() in COLUMNS:
                hint = f" (did you mean {quoted(name.lower())}? column names are lower case)"
            found.append(
                Problem(
                    f"line {line}",
                    f"unknown column {quoted(name)}{hint}; the columns are: {', '.join(COLUMNS)}",
                )
            )
        else:
            columns[name] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        found.append(Problem(f"line {line}", f"missing required {noun}: {', '.join(missing)}"))
    problems.extend(found)
    return None if found else columns


def _record(
    line: int, fields: list[str], columns: dict[str, int], problems: list[Problem]
) -> UsageInput | None:
    if len(fields) != len(columns):
        problems.append(
            Problem(
                f"line {line}",
                f"{len(fields)} fields, but the header has {len(columns)} columns",
            )
        )
        return None
    values = {name: fields[index] for name, index in columns.items()}
    found: list[Problem] = []

    def text(name: str, identifier: bool = True) -> str:
        value = values.get(name, "").strip()
        if not value:
            if identifier:
                found.append(Problem(f"line {line}, {name}", "required, but empty"))
            return value
        try:
            return parse_text(value, identifier=identifier)
        except FieldError as error:
            found.append(Problem(f"line {line}, {name}", str(error)))
            return value

    def parsed(name: str, parse: Callable[[str], T], required: bool = True) -> T | None:
        value = values.get(name, "")
        if not value.strip():
            if required:
                found.append(Problem(f"line {line}, {name}", "required, but empty"))
            return None
        try:
            return parse(value)
        except FieldError as error:
            found.append(Problem(f"line {line}, {name}", str(error)))
            return None

    account_id, usage_id, package_id = text("account_id"), text("usage_id"), text("package_id")
    quantity = parsed("quantity", parse_decimal)
    occurred_on = parsed("occurred_on", parse_date)
    unit_price = parsed("unit_price", parse_decimal, required=False)
    description = text("description", identifier=False) or None
    problems.extend(found)
    if found or quantity is None or occurred_on is None:
        return None
    return UsageInput(
        where=f"line {line}",
        account_id=account_id,
        usage_id=usage_id,
        package_id=package_id,
        quantity=quantity,
        occurred_on=occurred_on,
        unit_price=unit_price,
        description=description,
    )


def _same(a: UsageInput, b: UsageInput) -> bool:
    return (a.package_id, a.quantity, a.occurred_on, a.unit_price, a.description) == (
        b.package_id,
        b.quantity,
        b.occurred_on,
        b.unit_price,
        b.description,
    )


def _line_order(problem: Problem) -> int:
    found = re.match(r"line (\d+)", problem.path)
    return int(found.group(1)) if found else 0
