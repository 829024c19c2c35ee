"""The usage CSV parser: every record read exactly, or every problem with its line."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from application.billing.transactions import UsageInput
from application.billing.usage_csv import parse_date, parse_decimal, parse_usage_csv
from application.shared.errors import InvalidInput

HEADER = "account_id,usage_id,package_id,quantity,occurred_on,unit_price,description"
REQUIRED = "account_id,usage_id,package_id,quantity,occurred_on"


def csv_bytes(*lines: str, end: str = "\n") -> bytes:
    return end.join(lines).encode() + end.encode()


def problems(data: bytes) -> list[str]:
    with pytest.raises(InvalidInput) as refused:
        parse_usage_csv(data, "usage.csv")
    assert refused.value.source == "usage.csv"
    return [str(problem) for problem in refused.value.problems]


# Reading ---------------------------------------------------------------------------------


def test_reads_every_record_with_its_line() -> None:
    records = parse_usage_csv(
        csv_bytes(
            HEADER,
            "ACME-001,u-1,office,3,2026-01-05,0.50,Printing (pages)",
            "ACME-001,u-2,office,1.25,2026-01-06,,",
            "GLOBEX-002, u-3 ,desk,-2,2026-01-31, 0.1 , Refund ",
        ),
        "usage.csv",
    )

    assert records == [
        UsageInput(
            "line 2", "ACME-001", "u-1", "office", Decimal("3"), date(2026, 1, 5),
            Decimal("0.50"), "Printing (pages)",
        ),
        UsageInput("line 3", "ACME-001", "u-2", "office", Decimal("1.25"), date(2026, 1, 6)),
        UsageInput(
            "line 4", "GLOBEX-002", "u-3", "desk", Decimal("-2"), date(2026, 1, 31),
            Decimal("0.1"), "Refund",
        ),
    ]  # fmt: skip


def test_decimals_are_exact_never_floats() -> None:
    (record,) = parse_usage_csv(
        csv_bytes(HEADER, "A,u,p,0.100000000001,2026-01-01,0.30,"), "usage.csv"
    )

    assert isinstance(record.quantity, Decimal)
    assert record.quantity == Decimal("0.100000000001")
    assert record.unit_price is not None
    assert str(record.unit_price) == "0.30", "the scale as written is kept"
    assert record.quantity * record.unit_price == Decimal("0.03000000000030")


def test_columns_in_any_order_and_optional_columns_may_be_left_out() -> None:
    records = parse_usage_csv(
        csv_bytes("occurred_on,quantity,package_id,usage_id,account_id", "2026-01-05,2,p,u,A"),
        "usage.csv",
    )

    assert records == [UsageInput("line 2", "A", "u", "p", Decimal(2), date(2026, 1, 5))]


def test_a_byte_order_mark_and_crlf_line_ends_are_read() -> None:
    data = b"\xef\xbb\xbf" + csv_bytes(REQUIRED, "A,u,p,1,2026-01-05", end="\r\n")

    assert parse_usage_csv(data, "usage.csv") == [
        UsageInput("line 2", "A", "u", "p", Decimal(1), date(2026, 1, 5))
    ]


def test_blank_lines_and_rows_of_empty_cells_are_skipped_and_lines_still_counted() -> None:
    data = csv_bytes(
        "", REQUIRED, "", "A,u-1,p,1,2026-01-05", "   ", ",,,,", "A,u-2,p,2,2026-01-06"
    )

    records = parse_usage_csv(data, "usage.csv")

    assert [(r.where, r.usage_id) for r in records] == [("line 4", "u-1"), ("line 7", "u-2")]


def test_quoted_fields_may_hold_commas_and_quotes_but_a_line_break_is_refused() -> None:
    data = csv_bytes(
        HEADER, 'A,u-1,p,1,2026-01-05,,"Calls, ""peak""', 'and more"', "A,u-2,p,x,2026-01-05,,"
    )

    with pytest.raises(InvalidInput) as refused:
        parse_usage_csv(data, "usage.csv")
    # The second record starts on line 4: the first one spans lines 2 and 3. A line
    # break in a description would reach the invoice and its email: refused.
    assert [str(p) for p in refused.value.problems] == [
        'line 2, description: "Calls, \\"peak\\"\\nand more" holds a control character '
        "(U+000A) at position 14",
        'line 4, quantity: not a decimal: "x"',
    ]
    one_line = csv_bytes(HEADER, 'A,u-1,p,1,2026-01-05,,"Calls, ""peak"" and more"')
    (record,) = parse_usage_csv(one_line, "usage.csv")[:1]
    assert record.description == 'Calls, "peak" and more'


def test_reads_a_file_by_its_path_named_as_given(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_bytes(csv_bytes(REQUIRED, "A,u,p,1,2026-01-05", "A,v,p,1,2026-13-01"))

    with pytest.raises(InvalidInput) as refused:
        parse_usage_csv(path)

    assert refused.value.source == str(path)
    assert [str(p) for p in refused.value.problems] == [
        'line 3, occurred_on: "2026-13-01" is not a date: there is no month 13 (months are 01..12)'
    ]


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        parse_usage_csv(tmp_path / "missing.csv")


def test_the_same_row_twice_is_kept_for_the_account_to_count_as_a_duplicate() -> None:
    records = parse_usage_csv(
        csv_bytes(REQUIRED, "A,u,p,1,2026-01-05", "A,u,p,1.0,2026-01-05", "B,u,p,9,2026-01-05"),
        "usage.csv",
    )

    assert [(r.where, r.account_id, r.usage_id) for r in records] == [
        ("line 2", "A", "u"),
        ("line 3", "A", "u"),
        ("line 4", "B", "u"),
    ]


# Refusing --------------------------------------------------------------------------------


def test_every_problem_is_listed_with_its_line_and_column() -> None:
    data = csv_bytes(
        HEADER,
        "A,u-1,p,1.5,2026-01-05,,",  # fine
        'A,u-2,p,"1,5",2026-01-05,,',
        "A,u-3,p,1,2026-02-30,,",
        ",u-4,,1,2026-01-05,,",
        "A,,p,,,,",
        "A,u-6,p,NaN,20260105,1e3,",
        "A,u-7,p,1,2026-01-05,0.5",
        "A,u-8,p,1,2026-01-05,0.5,x,extra",
        'A,u-9,p,"1"2,2026-01-05,,',
        "A,u-10,p,١,2026-W01-1,,",
        "A,u-1,p,2,2026-01-05,,",
    )

    assert problems(data) == [
        'line 3, quantity: not a decimal: "1,5"',
        'line 4, occurred_on: "2026-02-30" is not a date: February 2026 has 28 days',
        "line 5, account_id: required, but empty",
        "line 5, package_id: required, but empty",
        "line 6, usage_id: required, but empty",
        "line 6, quantity: required, but empty",
        "line 6, occurred_on: required, but empty",
        'line 7, quantity: not a decimal: "NaN"',
        'line 7, occurred_on: not a date (YYYY-MM-DD): "20260105"',
        'line 7, unit_price: not a decimal: "1e3"',
        "line 8: 6 fields, but the header has 7 columns",
        "line 9: 8 fields, but the header has 7 columns",
        "line 10: not valid CSV: ',' expected after '\"'",
        'line 11, quantity: not a decimal: "١"',
        'line 11, occurred_on: not a date (YYYY-MM-DD): "2026-W01-1"',
        'line 12, usage_id: "u-1" of account "A" is also on line 2, with other data',
    ]


def test_the_refusal_names_the_file_counts_the_problems_and_says_nothing_was_written() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_usage_csv(csv_bytes(REQUIRED, "A,u,p,1;5,2026-01-05"), "january.csv")

    assert str(refused.value) == (
        "january.csv: refused, 1 problem, nothing written:\n"
        '  january.csv: line 2, quantity: not a decimal: "1;5"'
    )


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf", b"  \r\n,,\r\n"])
def test_an_empty_file_is_refused_asking_for_the_header(data: bytes) -> None:
    assert problems(data) == [
        "empty file: expected a header row: account_id,usage_id,package_id,quantity,occurred_on"
    ]


def test_a_header_without_records_is_refused() -> None:
    assert problems(csv_bytes(HEADER, "", "")) == ["no usage records: only a header (line 1)"]


def test_a_bad_header_is_refused_with_every_column_problem() -> None:
    header = "Account_ID,usage_id,package,quantity,quantity,occurred_on,"

    assert problems(csv_bytes(header, "A,u,p,1,1,2026-01-05,")) == [
        'line 1: unknown column "Account_ID" (did you mean "account_id"? column names are '
        "lower case); the columns are: account_id, usage_id, package_id, quantity, "
        "occurred_on, unit_price, description",
        'line 1: unknown column "package"; the columns are: account_id, usage_id, package_id, '
        "quantity, occurred_on, unit_price, description",
        'line 1: column "quantity" appears twice',
        "line 1: column 7 of the header has no name",
        "line 1: missing required columns: account_id, package_id",
    ]


def test_a_header_after_blank_lines_is_numbered_where_it_is() -> None:
    assert problems(csv_bytes("", "", "account_id,usage_id,package_id,quantity")) == [
        "line 3: missing required column: occurred_on"
    ]


def test_a_semicolon_separated_file_gets_a_hint() -> None:
    (first, second) = problems(csv_bytes(REQUIRED.replace(",", ";"), "A;u;p;1;2026-01-05"))

    assert "(separate the fields with commas, not semicolons)" in first
    assert second == (
        "line 1: missing required columns: account_id, usage_id, package_id, quantity, occurred_on"
    )


def test_bytes_that_are_not_utf8_are_refused_by_line_and_the_rest_still_checked() -> None:
    data = csv_bytes(REQUIRED, "A,u-1,p,1,2026-01-05", "A,u-2,Caf\xe9,1,2026-01-05").replace(
        "\xe9".encode(), b"\xe9"
    )
    data += csv_bytes("A,u-3,p,one,2026-01-05")

    assert problems(data) == [
        "line 3: not UTF-8 text: byte 0xe9 at position 10 (save the file as UTF-8)",
        'line 4, quantity: not a decimal: "one"',
    ]


def test_a_utf16_file_is_refused_once_not_line_by_line() -> None:
    data = (REQUIRED + "\nA,u,p,1,2026-01-05\n").encode("utf-16")

    assert problems(data) == ["the file is UTF-16 text: save it as UTF-8"]


def test_an_unterminated_quote_is_refused_at_the_record_it_opens() -> None:
    data = csv_bytes(
        REQUIRED, "A,u-1,p,1,2026-01-05", 'A,"u-2,p,1,2026-01-05', "A,u-3,p,1,2026-01-05"
    )

    assert problems(data) == ["line 3: not valid CSV: unexpected end of data"]


# Fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", "12"), ("-0.5", "-0.5"), ("+3", "3"), (" 1.25 ", "1.25"), (".5", "0.5"), ("5.", "5")],
)
def test_decimals_in_plain_notation(text: str, value: str) -> None:
    assert parse_decimal(text) == Decimal(value)


@pytest.mark.parametrize(
    "text", ["1,5", "1e3", "1_000", "NaN", "Infinity", "", "-", "1.2.3", "١٢", "0x10"]
)
def test_anything_else_is_not_a_decimal(text: str) -> None:
    with pytest.raises(ValueError, match="not a decimal"):
        parse_decimal(text)


@pytest.mark.parametrize("text", ["2026-1-5", "20260105", "05/01/2026", "2026-W01"])
def test_dates_are_yyyy_mm_dd_and_real(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a date \(YYYY-MM-DD\)"):
        parse_date(text)
    assert parse_date("2028-02-29") == date(2028, 2, 29)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-02-29", '"2026-02-29" is not a date: February 2026 has 28 days'),
        ("2026-04-31", '"2026-04-31" is not a date: April 2026 has 30 days'),
        ("2026-13-01", '"2026-13-01" is not a date: there is no month 13 (months are 01..12)'),
        ("2026-00-10", '"2026-00-10" is not a date: there is no month 00 (months are 01..12)'),
        ("2026-01-00", '"2026-01-00" is not a date: days start at 01'),
    ],
)
def test_a_well_formed_date_the_calendar_lacks_is_not_called_a_format_error(
    text: str, why: str
) -> None:
    with pytest.raises(ValueError) as refused:
        parse_date(text)
    assert str(refused.value) == why
