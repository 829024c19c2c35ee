"""The import file: its schema (pydantic, exported as JSON Schema) and validation.

Validation reports every problem with its path in the file, e.g.
`accounts[3].packages[0].amount: not a decimal: "12,00"`, so an operator can fix
a file in one pass. Amounts must be JSON strings: a JSON number would pass
through a binary float on the way in, which billrun never allows.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from application.errors import InvalidInput, Problem
from domain.bill_group import DEFAULT_CHANNEL, DeliveryChannel
from domain.errors import NotABillDate
from domain.money import MINOR_UNITS, is_currency, round_to_currency
from domain.periods import Frequency, Timing, index_of_bill_date

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _decimal_string(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f'must be a decimal string such as "1200.00", not {json.dumps(value)}')
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal: {json.dumps(value)}") from None
    if not amount.is_finite():
        raise ValueError(f"not a finite decimal: {json.dumps(value)}")
    return amount


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not is_currency(value):
        raise ValueError(f"not an ISO 4217 currency code: {json.dumps(value)}")
    return value


def _email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _EMAIL.match(value):
        raise ValueError(f"not an email address: {json.dumps(value)}")
    return value


def _non_empty(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, not {json.dumps(value)}")
    return value.strip()


DecimalString = Annotated[
    Decimal, BeforeValidator(_decimal_string), Field(json_schema_extra={"type": "string"})
]
CurrencyCode = Annotated[
    str,
    BeforeValidator(_currency),
    Field(description="ISO 4217 code", json_schema_extra={"enum": sorted(MINOR_UNITS)}),
]
Email = Annotated[str | None, BeforeValidator(_email)]
Identifier = Annotated[str, BeforeValidator(_non_empty)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PackageRecord(_Strict):
    """A recurring package on an account."""

    id: Identifier
    description: Identifier
    amount: DecimalString = Field(description='Price per period, a decimal string: "1200.00"')
    frequency: Frequency
    timing: Timing = Timing.ADVANCE
    start_date: date
    next_bill_date: date | None = Field(
        default=None,
        description="A bill date on the package's schedule; default: the start date "
        "(advance) or one period after it (arrears)",
    )
    end_date: date | None = None


class AccountRecord(_Strict):
    id: Identifier = Field(description="The operator's account id, e.g. ACME-001")
    name: Identifier
    currency: CurrencyCode
    invoice_email: Email = None
    bill_group: Identifier = "default"
    packages: list[PackageRecord] = Field(default_factory=list)


class BillGroupRecord(_Strict):
    """How the invoices of a bill group are delivered."""

    id: Identifier
    delivery: DeliveryChannel = Field(
        default=DEFAULT_CHANNEL,
        description="email (SMTP, PDF attached), file (an .eml in the outbox folder) or none",
    )
    email_subject: str | None = Field(
        default=None, description="jinja2 template of the subject; default: built in"
    )
    email_template: str | None = Field(
        default=None, description="jinja2 template of the email body; default: built in"
    )
    first_invoice_email_template: str | None = Field(
        default=None,
        description="jinja2 template of the body for an account's first invoice; "
        "default: email_template",
    )


class ImportDocument(_Strict):
    """Bill groups, accounts and their packages. Importing it twice changes nothing."""

    bill_groups: list[BillGroupRecord] = Field(default_factory=list)
    accounts: list[AccountRecord] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    schema = ImportDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "billrun import file"
    return schema


def parse_import(raw: bytes, source: str) -> ImportDocument:
    """Parse and validate a whole import file, or raise InvalidInput listing every problem."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(source, [Problem("", f"not valid JSON: {error}")]) from None
    if not isinstance(data, dict):
        raise InvalidInput(source, [Problem("", 'must be a JSON object with an "accounts" list')])
    problems: list[Problem] = []
    unknown = sorted(set(data) - set(ImportDocument.model_fields))
    problems.extend(Problem(key, "unknown field") for key in unknown)
    raw_accounts = data.get("accounts", [])
    if not isinstance(raw_accounts, list):
        problems.append(Problem("accounts", "must be a list"))
        raw_accounts = []
    # Each account is validated on its own so that one bad record does not hide
    # the problems of the others; the parts of a bad record that are valid on
    # their own still take part in the cross-record checks, so one bad field does
    # not hide a duplicate id or an off-schedule date until the next attempt.
    accounts: list[tuple[int, AccountRecord]] = []
    checkable: list[_Checkable] = []
    for index, record in enumerate(raw_accounts):
        try:
            account = AccountRecord.model_validate(record)
        except ValidationError as error:
            problems.extend(_problem(e, ("accounts", index)) for e in error.errors())
            checkable.append(_salvage(index, record))
        else:
            accounts.append((index, account))
            checkable.append(
                _Checkable(
                    index, account.id, account.currency, [(p.id, p) for p in account.packages]
                )
            )
    problems.extend(_cross_record_problems(checkable))
    groups = _bill_groups(data.get("bill_groups", []), problems)
    if problems:
        raise InvalidInput(source, sorted(problems, key=_reading_order))
    return ImportDocument(bill_groups=groups, accounts=[account for _, account in accounts])


def _bill_groups(raw: Any, problems: list[Problem]) -> list[BillGroupRecord]:
    if not isinstance(raw, list):
        problems.append(Problem("bill_groups", "must be a list"))
        return []
    groups: list[BillGroupRecord] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(raw):
        try:
            group = BillGroupRecord.model_validate(record)
        except ValidationError as error:
            problems.extend(_problem(e, ("bill_groups", index)) for e in error.errors())
            continue
        if group.id in seen:
            problems.append(
                Problem(
                    f"bill_groups[{index}].id",
                    f"duplicate of bill_groups[{seen[group.id]}].id: {json.dumps(group.id)}",
                )
            )
            continue
        seen[group.id] = index
        groups.append(group)
    return groups


def _reading_order(problem: Problem) -> list[tuple[int, int | str]]:
    # Indexes sort as numbers; the (kind, value) pairs never compare an int with a
    # str, even when a field is named like a number ({"1": ...}).
    return [
        (0, int(p)) if p.isdecimal() else (1, p) for p in re.split(r"[\[\].]+", problem.path) if p
    ]


def format_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _problem(error: Any, prefix: tuple[int | str, ...] = ()) -> Problem:
    location = prefix + tuple(
        part for part in error["loc"] if not str(part).startswith("function-")
    )
    kind = error["type"]
    given = error.get("input")
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = "unknown field"
    elif kind.startswith("date"):
        message = f"not a date (YYYY-MM-DD): {json.dumps(given, default=str)}"
    elif kind == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        message = f"must be one of {expected}, not {json.dumps(given, default=str)}"
    else:
        message = f"{error['msg']}: {json.dumps(given, default=str)}"
    return Problem(format_path(location), message)


class _Checkable(NamedTuple):
    """What the cross-record checks need from an account record, valid or not."""

    record_index: int
    id: str | None
    currency: str | None
    packages: list[tuple[str | None, PackageRecord | None]]


def _salvage(index: int, record: Any) -> _Checkable:
    """The parts of an invalid account record that are valid on their own."""
    if not isinstance(record, dict):
        return _Checkable(index, None, None, [])
    currency = record.get("currency")
    raw_packages = record.get("packages")
    packages: list[tuple[str | None, PackageRecord | None]] = []
    for raw in raw_packages if isinstance(raw_packages, list) else []:
        try:
            package = PackageRecord.model_validate(raw)
        except ValidationError:
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            packages.append((_identifier_or_none(raw_id), None))
        else:
            packages.append((package.id, package))
    return _Checkable(
        index,
        _identifier_or_none(record.get("id")),
        currency if isinstance(currency, str) and is_currency(currency) else None,
        packages,
    )


def _identifier_or_none(value: Any) -> str | None:
    try:
        return _non_empty(value)
    except ValueError:
        return None


def _cross_record_problems(accounts: list[_Checkable]) -> list[Problem]:
    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    for account in accounts:
        a = account.record_index
        where = f"accounts[{a}]"
        if account.id is None:
            pass
        elif account.id in first_seen:
            problems.append(
                Problem(
                    f"{where}.id",
                    f"duplicate of accounts[{first_seen[account.id]}].id: {json.dumps(account.id)}",
                )
            )
        else:
            first_seen[account.id] = a
        package_seen: dict[str, int] = {}
        for p, (package_id, package) in enumerate(account.packages):
            at = f"{where}.packages[{p}]"
            if package_id is None:
                pass
            elif package_id in package_seen:
                problems.append(
                    Problem(
                        f"{at}.id",
                        f"duplicate of {where}.packages[{package_seen[package_id]}]"
                        f".id: {json.dumps(package_id)}",
                    )
                )
            else:
                package_seen[package_id] = p
            if package is not None:
                problems.extend(_package_problems(package, account.currency, at))
    return problems


def _package_problems(package: PackageRecord, currency: str | None, at: str) -> list[Problem]:
    """A package's own rules; the amount is checked only when the currency is valid."""
    problems: list[Problem] = []
    amount = json.dumps(str(package.amount))
    if currency is not None:
        try:
            rounded = round_to_currency(package.amount, currency)
        except ValueError:
            problems.append(Problem(f"{at}.amount", f"{amount} is too large for {currency}"))
        else:
            if package.amount != rounded:
                problems.append(
                    Problem(
                        f"{at}.amount",
                        f"{amount} has more decimals than "
                        f"{currency} allows ({MINOR_UNITS[currency]})",
                    )
                )
    if package.end_date is not None and package.end_date < package.start_date:
        problems.append(
            Problem(
                f"{at}.end_date", f"{package.end_date} is before start_date {package.start_date}"
            )
        )
    if package.next_bill_date is not None:
        try:
            index = index_of_bill_date(
                package.start_date, package.frequency, package.next_bill_date
            )
        except NotABillDate as error:
            problems.append(Problem(f"{at}.next_bill_date", str(error)))
        else:
            if package.timing is Timing.ARREARS and index < 1:
                problems.append(
                    Problem(
                        f"{at}.next_bill_date",
                        "an arrears package's first bill date is one period after its start date",
                    )
                )
    return problems
