"""Printing for people (rich tables) and for programs (JSON on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from rich.console import Console

from domain.money import plain, round_to_currency

console = Console()
errors = Console(stderr=True)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=_default, indent=2) + "\n")


def print_json_array(items: Iterable[Any]) -> None:
    """A JSON array written item by item, so a large result never sits in memory."""
    out = sys.stdout
    first = True
    out.write("[")
    for item in items:
        out.write("\n  " if first else ",\n  ")
        out.write(json.dumps(item, default=_default))
        first = False
    out.write("]\n" if first else "\n]\n")


def money(amount: Decimal, currency: str) -> str:
    """`1,234.50 EUR`: grouped, at the currency's minor unit, never `1E+2`."""
    return f"{round_to_currency(amount, currency):,f} {currency}"


def number(value: Decimal) -> str:
    """A quantity, unit price, rate or amount in a table cell: plain notation."""
    return plain(value)
