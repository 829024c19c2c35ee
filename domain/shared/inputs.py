"""What billrun accepts as text and numbers from outside, in one place.

Every input path (the import file, the usage CSV, command-line options, and the
HTTP API) applies these rules before anything is written, because what gets past
them is stored for ever and read back by every later run:

- PostgreSQL cannot hold a NUL character in text or JSON; a lone surrogate is
  not UTF-8 at all; XML (the UBL/CII invoices) cannot hold most control
  characters or the noncharacters U+FFFE/U+FFFF; a CR or LF in a name ends up in
  an email header. Such text once stored blocks every run that reads it, so it
  is refused at the door, with the position of the first bad character.
- Ids are also compared, printed and used in file names and message ids: they
  may not hold invisible format characters (zero-width, right-to-left override,
  byte order mark) that make two ids look the same or an id print backwards.
- Lengths are bounded, so a name cannot make a 1 MB email header.
- Decimals are plain notation only (`1200.00`, `-0.5`; no exponent, no
  underscores, ASCII digits) and within what billrun can bill: less than
  10**12 in magnitude (`MAX_MAGNITUDE`) with at most 12 decimals
  (`MAX_DECIMALS`). Two such numbers multiply (quantity by price, amount by rate)
  to at most 26 digits, which the 28-digit decimal context rounds exactly.
"""

from __future__ import annotations

import calendar
import json
import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation

MAX_ID_LENGTH = 100
MAX_TEXT_LENGTH = 500
MAX_TEMPLATE_LENGTH = 65_536
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a path

MAX_MAGNITUDE = Decimal(10) ** 12
MAX_DECIMALS = 12

# The dates billrun bills: wide enough for any real contract, narrow enough that
# every bill date and period computed from them stays a valid date.
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2199, 12, 31)

# Bidirectional embeddings, overrides and isolates: they reorder how text prints
# (an id that reads "ACME-001" but is stored otherwise), never needed in a name.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)


class InputRefused(ValueError):
    """A value billrun cannot take; the message says why and quotes the value."""


def quoted(value: str) -> str:
    """A value as the operator wrote it, in double quotes, with escapes for what
    cannot be shown (controls, format characters, surrogates), cut short when long."""
    shown = value if len(value) <= 80 else value[:60]
    text = "".join(
        c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
        for c in json.dumps(shown, ensure_ascii=False)
    )
    return text if shown is value else f'{text[:-1]}..." ({len(value)} characters)'


def _noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def _bad_character(char: str, identifier: bool, multiline: bool) -> str | None:
    code = ord(char)
    category = unicodedata.category(char)
    if multiline and char in "\t\n\r":
        kind = None
    elif category == "Cc":
        kind = "a control character"
    elif category == "Cs":
        kind = "a lone surrogate"
    elif _noncharacter(code):
        kind = "a noncharacter"
    elif char in _BIDI_CONTROLS:
        kind = "a bidirectional control character"
    elif category in ("Zl", "Zp"):
        kind = "a line or paragraph separator"
    elif identifier and category == "Cf":
        kind = "an invisible format character"
    elif identifier and category == "Zs" and char != " ":
        kind = "a space other than the plain space"
    else:
        kind = None
    return None if kind is None else f"{kind} (U+{code:04X})"


def check_text(
    value: str, *, identifier: bool = False, max_length: int | None = None, multiline: bool = False
) -> str:
    """`value` unchanged when billrun can store, print and send it, else InputRefused
    naming the first bad character and its position (1-based).

    `identifier`: also refuse invisible format characters and unusual spaces.
    `max_length` defaults to MAX_ID_LENGTH for ids and MAX_TEXT_LENGTH otherwise.
    `multiline`: allow tabs and line breaks (a template's text, never a name).
    """
    limit = (
        max_length if max_length is not None else (MAX_ID_LENGTH if identifier else MAX_TEXT_LENGTH)
    )
    for position, char in enumerate(value, start=1):
        problem = _bad_character(char, identifier, multiline)
        if problem is not None:
            raise InputRefused(f"{quoted(value)} holds {problem} at position {position}")
    if len(value) > limit:
        raise InputRefused(f"{quoted(value)} is longer than {limit} characters")
    return value


def parse_plain_decimal(text: str) -> Decimal:
    """An exact decimal in plain notation (`12`, `-0.5`, `1.25`), surrounding
    spaces ignored, within MAX_MAGNITUDE and MAX_DECIMALS; else InputRefused."""
    value = text.strip()
    if not _PLAIN_DECIMAL.fullmatch(value):
        raise InputRefused(f"not a decimal: {quoted(text)}")
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise InputRefused(f"not a decimal: {quoted(text)}") from None
    return check_decimal(number, text)


def check_decimal(number: Decimal, text: str | None = None) -> Decimal:
    """`number` when billrun can bill it: finite, |number| < 10**12, at most 12
    decimals (trailing zeros do not count)."""
    shown = quoted(text if text is not None else str(number))
    if not number.is_finite():
        raise InputRefused(f"not a finite decimal: {shown}")
    if abs(number) >= MAX_MAGNITUDE:
        raise InputRefused(f"{shown} is too large: billrun bills amounts, quantities and "
                           f"rates below 1000000000000 (10^12)")  # fmt: skip
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMALS:
        raise InputRefused(f"{shown} has more than {MAX_DECIMALS} decimals")
    return number


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def parse_iso_date(text: str) -> date:
    """An ISO calendar date, `YYYY-MM-DD` exactly (not the other forms ISO allows,
    nor a date and time), within FIRST_DATE to LAST_DATE; else InputRefused."""
    value = text.strip()
    if not _ISO_DATE.fullmatch(value):
        raise InputRefused(f"not a date (YYYY-MM-DD): {quoted(text)}")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        # The operator wrote the format right: say which day the calendar lacks.
        raise DateNotInCalendar(f"{quoted(text)} is not a date: {_why_not_a_date(value)}") from None
    return check_date(day)


class DateNotInCalendar(InputRefused):
    """A well-formed YYYY-MM-DD the calendar does not have (2026-02-30)."""


def _why_not_a_date(value: str) -> str:
    """Why a well-formed YYYY-MM-DD is not in the calendar."""
    year, month, day = (int(part) for part in value.split("-"))
    if not 1 <= month <= 12:
        return f"there is no month {month:02d} (months are 01..12)"
    if year < 1:
        return "years start at 0001"
    if day < 1:
        return "days start at 01"
    last = calendar.monthrange(year, month)[1]
    return f"{calendar.month_name[month]} {year:04d} has {last} days"


def check_date(day: date) -> date:
    """`day` when within the dates billrun bills (FIRST_DATE to LAST_DATE)."""
    if not FIRST_DATE <= day <= LAST_DATE:
        raise InputRefused(
            f"{day.isoformat()} is outside the dates billrun bills, "
            f"{FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()}"
        )
    return day


_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+", re.ASCII)
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}", re.ASCII
)


def check_email(value: str) -> str:
    """`value` when it is exactly one plain address, `local@domain.tld`: no display
    name, no list, no quotes, brackets, comments or spaces, so it can only ever reach
    the mail server as that one recipient (a comma once added a second one)."""
    address = value.strip()
    shown = quoted(value)
    if len(address) > MAX_EMAIL_LENGTH:
        raise InputRefused(f"{shown} is longer than {MAX_EMAIL_LENGTH} characters")
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not _LOCAL.fullmatch(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
        or len(local) > 64
        or not _DOMAIN.fullmatch(domain)
    ):
        # One address such as name@example.com: no display name, quotes, brackets,
        # commas or spaces.
        raise InputRefused(f"not an email address: {shown}")
    return address
