"""The import file: its schema (pydantic, exported as JSON Schema) and validation.

Validation reports every problem with its path in the file, e.g.
`accounts[3].packages[0].amount: not a decimal: "12,00"`, so an operator can fix
a file in one pass. Amounts, rates, prices and quantities must be JSON strings:
a JSON number would pass through a binary float on the way in, which billrun
never allows.

What can only be judged against the stored accounts (a usage record naming a
package imported before, a change the history forbids) is checked by
`importing.import_accounts`, again for the whole file before anything is written.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)

from application.shared.errors import InvalidInput, Problem
from domain.billing.contracts import DEFAULT_CONTRACT_CATEGORY
from domain.billing.lines import DEFAULT_CHARGE_CATEGORY, DEFAULT_PACKAGE_CATEGORY
from domain.invoicing.entities import IssuingEntity, borrowed_format
from domain.invoicing.entity_details import EntityDetails
from domain.invoicing.group_terms import (
    DEFAULT_CHANNEL,
    DEFAULT_CLOSE_TYPE,
    CloseType,
    DeliveryChannel,
)
from domain.receivables.dunning import DunningRules, DunningStage, SuspendedBilling
from domain.receivables.receivables import DEFAULT_PAYMENT_TERMS_DAYS
from domain.shared.errors import DomainError, NotABillDate
from domain.shared.inputs import (
    MAX_ID_LENGTH,
    MAX_TEMPLATE_LENGTH,
    MAX_TEXT_LENGTH,
    InputRefused,
    check_email,
    check_text,
    parse_iso_date,
    parse_plain_decimal,
)
from domain.shared.money import MINOR_UNITS, is_currency, round_to_currency
from domain.shared.periods import Frequency, Timing, bill_date, index_of_bill_date


def _decimal_string(value: Any) -> Decimal:
    # The same strict parser as the usage CSV and the command line: plain notation,
    # ASCII digits, within what billrun can bill (domain/shared/inputs.py).
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f'must be a decimal string such as "1200.00", not {_shown(value)}')
    return parse_plain_decimal(value)


def _shown(value: Any) -> str:
    """A JSON value as given, cut short when long (a 5,000-digit number is not echoed)."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _iso_date(value: Any) -> date:
    # Exactly YYYY-MM-DD, as in the usage CSV and on the command line: pydantic's own
    # date would also take a datetime string or a number of seconds since 1970.
    if not isinstance(value, str):
        raise ValueError(f"not a date (YYYY-MM-DD): {_shown(value)}")
    return parse_iso_date(value)


def _percent(value: Decimal) -> Decimal:
    if not Decimal(0) <= value <= Decimal(100):
        raise ValueError(f"{json.dumps(str(value))} is not a percentage from 0 to 100")
    return value


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"{json.dumps(str(value))} is negative")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"{json.dumps(str(value))} must be positive")
    return value


def _whole_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, not {_shown(value)}")
    return value


def _bounded(low: int, high: int, what: str) -> Any:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"{what} is {low} to {high}, not {_shown(value)}")
        return value

    return check


def _payment_terms(value: int) -> int:
    if not 0 <= value <= 365:
        raise ValueError(f"payment terms are 0 to 365 days net, not {_shown(value)}")
    return value


MAX_DAYS_OVERDUE = 3650


def _days_overdue(value: int) -> int:
    if value < 1:
        raise ValueError(f"a stage is reached 1 day overdue or later, not {value}")
    if value > MAX_DAYS_OVERDUE:
        raise ValueError(
            f"a stage is reached at most {MAX_DAYS_OVERDUE} days overdue, not {_shown(value)}"
        )
    return value


def _template(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("a blank template: leave it out for the built-in one")
    if isinstance(value, str):
        check_text(value, max_length=MAX_TEMPLATE_LENGTH, multiline=True)
        # Compiled now, in the sandbox it renders in: a syntax error or a template
        # reaching for what the sandbox forbids is refused here, not at delivery.
        # Imported here: jinja2 was ~20 ms of every command's start (each imports
        # this module through the application), for the few that import templates.
        from infrastructure.rendering.templates import check_template

        problem = check_template(value)
        if problem is not None:
            raise ValueError(problem)
    return value


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not is_currency(value):
        raise ValueError(f"not an ISO 4217 currency code: {json.dumps(value)}")
    return value


def _email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not an email address: {_shown(value)}")
    return check_email(value)


def _non_empty(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, not {_shown(value)}")
    return value.strip()


def _identifier(value: Any) -> str:
    return check_text(_non_empty(value), identifier=True)


def _text(value: Any) -> str:
    return check_text(_non_empty(value))


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_shown(value)}")
    return value


# The schema says what the file must hold, a string; pydantic's own schema for a
# Decimal would also offer a JSON number, which is refused.
_AS_STRING = WithJsonSchema({"type": "string"})
DecimalString = Annotated[Decimal, BeforeValidator(_decimal_string), _AS_STRING]
Percent = Annotated[Decimal, BeforeValidator(_decimal_string), AfterValidator(_percent), _AS_STRING]
NonNegativeDecimal = Annotated[
    Decimal, BeforeValidator(_decimal_string), AfterValidator(_not_negative), _AS_STRING
]
PositiveDecimal = Annotated[
    Decimal, BeforeValidator(_decimal_string), AfterValidator(_positive), _AS_STRING
]
PositivePercent = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_positive),
    AfterValidator(_percent),
    _AS_STRING,
]
PaymentTermsDays = Annotated[
    int,
    BeforeValidator(_whole_number),
    AfterValidator(_payment_terms),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 365}),
]
DaysOverdue = Annotated[
    int,
    BeforeValidator(_whole_number),
    AfterValidator(_days_overdue),
    WithJsonSchema({"type": "integer", "minimum": 1}),
]
Template = Annotated[str, BeforeValidator(_template)]
Day = Annotated[
    date, BeforeValidator(_iso_date), WithJsonSchema({"type": "string", "format": "date"})
]
BillDay = Annotated[
    int,
    BeforeValidator(_whole_number),
    AfterValidator(_bounded(1, 31, "a bill day")),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 31}),
]
TermMonths = Annotated[
    int,
    BeforeValidator(_whole_number),
    AfterValidator(_bounded(1, 1200, "a term")),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 1200}),
]
Flag = Annotated[bool, BeforeValidator(_strict_bool)]
CurrencyCode = Annotated[
    str,
    BeforeValidator(_currency),
    Field(description="ISO 4217 code", json_schema_extra={"enum": sorted(MINOR_UNITS)}),
]
Email = Annotated[str | None, BeforeValidator(_email)]
# An id: no invisible or control characters, at most MAX_ID_LENGTH; a name or a
# description: no control characters (a CR/LF would reach an email header), at most
# MAX_TEXT_LENGTH (domain/shared/inputs.py).
Identifier = Annotated[
    str,
    BeforeValidator(_identifier),
    WithJsonSchema({"type": "string", "maxLength": MAX_ID_LENGTH}),
]
Text = Annotated[
    str, BeforeValidator(_text), WithJsonSchema({"type": "string", "maxLength": MAX_TEXT_LENGTH})
]


VatCategory = Annotated[
    Literal["S", "Z", "E", "AE", "K", "G", "O"] | None,
    Field(
        description="VAT category (UNCL 5305) of its lines: S standard, Z zero rated, E "
        "exempt, AE reverse charge, K intra-community supply, G export, O not subject "
        "to VAT; needs its own tax_rate (S above 0, the others 0); default: from the rate",
    ),
]
"""A package's or charge's VAT category (both carry one, checked the same way)."""

ExemptionReason = Annotated[
    Text | None,
    Field(
        description="Why it is not taxed (printed, BT-120): required for E; optional "
        "for AE, K, G, O (default: the category's standard wording)",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class PackageRecord(_Strict):
    """A recurring package on an account."""

    id: Identifier
    description: Text
    amount: DecimalString = Field(description='Price per period, a decimal string: "1200.00"')
    frequency: Frequency
    timing: Timing = Timing.ADVANCE
    start_date: Day
    anchor_date: Day | None = Field(
        default=None,
        description="The date the schedule counts from; default: the start date. On or "
        "before the start date and less than one period before it; the first period is "
        "then partial, prorated by days",
    )
    next_bill_date: Day | None = Field(
        default=None,
        description="A bill date on the package's schedule; default: the anchor date "
        "(advance) or one period after it (arrears)",
    )
    end_date: Day | None = None
    category: Identifier = Field(
        default=DEFAULT_PACKAGE_CATEGORY,
        description="The invoice lines' category; a run can bill chosen categories only",
    )
    tax_rate: Percent | None = Field(
        default=None,
        description='Tax in percent, a decimal string: "20"; default: the account\'s rate',
    )
    usage_rate: NonNegativeDecimal | None = Field(
        default=None,
        description="Price per unit of this package's usage records that have no "
        'unit_price of their own, a decimal string: "0.05"',
    )
    vat_category: VatCategory = None
    exemption_reason: ExemptionReason = None

    @property
    def anchor(self) -> date:
        return self.start_date if self.anchor_date is None else self.anchor_date


class ChargeRecord(_Strict):
    """A one-off charge, or a credit (negative amount), billed once."""

    id: Identifier = Field(description="Unique within the account")
    description: Text
    amount: DecimalString = Field(
        description='A decimal string: "50.00"; negative for a credit: "-20.00"'
    )
    # Annotated, not `= Field(...)`: a value bound to `date` in the class body would
    # hide the type `date` from pydantic.
    date: Annotated[
        Day, Field(description="Billed by the first run whose period ends on or after it")
    ]
    category: Identifier = Field(default=DEFAULT_CHARGE_CATEGORY)
    tax_rate: Percent | None = Field(
        default=None,
        description='Tax in percent, a decimal string: "20"; default: the account\'s rate',
    )
    vat_category: VatCategory = None
    exemption_reason: ExemptionReason = None


class UsageRecord(_Strict):
    """A quantity of a package's service used on one day."""

    id: Identifier = Field(description="Unique within the account")
    package_id: Identifier = Field(
        description="A package of the account, in this file or imported before"
    )
    quantity: DecimalString = Field(description='A decimal string: "1250"')
    occurred_on: Day = Field(description="Within the package's start and end dates")
    unit_price: DecimalString | None = Field(
        default=None,
        description="Price per unit, a decimal string; default: the package's usage_rate",
    )
    description: Text | None = Field(
        default=None, description="The invoice line's text; default: the package's description"
    )


class ContractRecord(_Strict):
    """A contract on the account or one of its packages: a minimum term with an
    early-termination fee, and/or a minimum spend over the term (docs/contracts.md)."""

    id: Identifier = Field(description="Unique within the account")
    description: Text = Field(description="The penalty lines' text")
    package_id: Identifier | None = Field(
        default=None, description="A package of the account; default: the whole account"
    )
    start_date: Day
    term_months: TermMonths = Field(description="The minimum term, in months")
    early_termination_fee: NonNegativeDecimal | None = Field(
        default=None, description='Billed once if terminated before the term ends: "150.00"'
    )
    minimum_spend: NonNegativeDecimal | None = Field(
        default=None, description="Committed over the term; a shortfall is billed once"
    )
    category: Identifier = Field(default=DEFAULT_CONTRACT_CATEGORY)
    tax_rate: Percent | None = None
    terminated_on: Day | None = Field(
        default=None, description="The contract's last day, when terminated"
    )


class AddressRecord(_Strict):
    """A buyer's postal address, as e-invoices state it (EN 16931 BG-8)."""

    street: Text | None = None
    city: Text | None = None
    postal_code: Identifier | None = None
    country: Identifier = Field(description="ISO 3166-1 alpha-2 code, e.g. BE")


class ElectronicAddressRecord(_Strict):
    """Where the buyer receives e-invoices (EN 16931 BT-49; Peppol's participant id)."""

    scheme: Identifier = Field(
        description="A Peppol EAS code: 0208 (Belgian enterprise number), 9925 (Belgian "
        "VAT), 0009 (SIRET), 0088 (GLN), ...; or EM (email)"
    )
    id: Identifier


class AccountRecord(_Strict):
    id: Identifier = Field(description="The operator's account id, e.g. ACME-001")
    name: Text
    currency: CurrencyCode
    invoice_email: Email = None
    bill_group: Identifier = "default"
    tax_rate: Percent = Field(
        default=Decimal(0),
        description='Tax in percent, a decimal string: "20"; lines without a rate of '
        "their own are taxed at it",
    )
    bill_day: BillDay | None = Field(
        default=None,
        description="Day of the month the account's cycle turns (29-31: the last day of "
        "shorter months). Invoices are rendered and delivered by a run whose period "
        "contains it, and held until then. Default: every run",
    )
    invoicer: Identifier | None = Field(
        default=None,
        description="Bill this account onto that account's invoices (one invoice for the "
        "family, converted to the invoicer's currency). The invoicer has no invoicer itself",
    )
    payment_terms_days: PaymentTermsDays | None = Field(
        default=None,
        description="Net days from an invoice's issue to its due date, 0 to 365; null: "
        f"the bill group's terms (else {DEFAULT_PAYMENT_TERMS_DAYS}); left out: as they are. "
        "An invoicer's only: a family's invoices are its invoicer's",
    )
    autopay_token: Identifier | None = Field(
        default=None,
        description="The payment method's token at the payment gateway: runs that collect "
        "payments charge it. null: auto-pay off; left out: as it is. An invoicer's only",
    )
    address: AddressRecord | None = Field(
        default=None,
        description="The buyer's postal address (e-invoices need it with its country). "
        "null: none; left out: as it is",
    )
    vat_id: Identifier | None = Field(
        default=None, description="The buyer's VAT id, e.g. BE0477472701; left out: as it is"
    )
    electronic_address: ElectronicAddressRecord | None = Field(
        default=None,
        description="Where the buyer receives e-invoices (Peppol); left out: as it is",
    )
    packages: list[PackageRecord] = Field(default_factory=list)
    charges: list[ChargeRecord] = Field(default_factory=list)
    usage: list[UsageRecord] = Field(default_factory=list)
    contracts: list[ContractRecord] = Field(default_factory=list)


class DunningStageRecord(_Strict):
    """One rung of a dunning ladder, reached `days_overdue` days after an invoice's
    due date, with its actions (at least one)."""

    days_overdue: DaysOverdue = Field(
        description="Days after the due date the stage is reached, 1 or more; each stage "
        "later than the one before"
    )
    notify: Flag = Field(
        default=False, description="Send a notice by the bill group's delivery channel"
    )
    late_fee: PositiveDecimal | None = Field(
        default=None,
        description='A fixed late fee in the account\'s currency, a decimal string: "10.00"; '
        "billed as a one-off charge",
    )
    late_fee_percent: PositivePercent | None = Field(
        default=None,
        description="A late fee as a percentage of the overdue amount, a decimal string: "
        '"1.5" (added to late_fee when both are given)',
    )
    suspend: Flag = Field(
        default=False, description="Suspend the account until the invoice is paid"
    )
    template: Template | None = Field(
        default=None,
        description="jinja2 template of the notice's body (a stage that notifies); "
        "default: built in",
    )

    def stage(self) -> DunningStage:
        return DunningStage(
            days_overdue=self.days_overdue,
            notify=self.notify,
            late_fee=self.late_fee,
            late_fee_percent=self.late_fee_percent,
            suspend=self.suspend,
            template=self.template,
        )


class DunningRecord(_Strict):
    """A bill group's dunning rules: a ladder of stages by days overdue. Only the
    highest stage an invoice has reached is applied, once per invoice."""

    name: Text = Field(default=DunningRules().name, description="The ladder's name")
    stages: list[DunningStageRecord] = Field(
        description="In increasing days overdue; none: no dunning"
    )

    def rules(self) -> DunningRules:
        return DunningRules.checked(self.name, [stage.stage() for stage in self.stages])


class BillGroupRecord(_Strict):
    """How the invoices of a bill group are closed, reviewed and delivered."""

    id: Identifier
    delivery: DeliveryChannel = Field(
        default=DEFAULT_CHANNEL,
        description="email (SMTP, PDF attached), file (an .eml in the outbox folder) or none",
    )
    email_subject: Template | None = Field(
        default=None, description="jinja2 template of the subject; default: built in"
    )
    email_template: Template | None = Field(
        default=None, description="jinja2 template of the email body; default: built in"
    )
    first_invoice_email_template: Template | None = Field(
        default=None,
        description="jinja2 template of the body for an account's first invoice; "
        "default: email_template",
    )
    close_type: CloseType = Field(
        default=DEFAULT_CLOSE_TYPE,
        description="When invoices close: after_each_bill_run, post_user_billing (as soon "
        "as the account is billed) or user_bill_cycle (when a package is next due)",
    )
    zero_invoices: Flag = Field(
        default=True,
        description="Accounts with an active package but nothing billed in a run's "
        "period still get an invoice (of zero); a category run counts only packages of "
        "its categories",
    )
    quarantine_above: NonNegativeDecimal | None = Field(
        default=None,
        description="Review rule: quarantine an invoice whose total is above this amount "
        '(in the invoice currency), a decimal string: "5000.00"; default: no threshold',
    )
    reject_negative: Flag = Field(
        default=False, description="Review rule: reject an invoice whose total is negative"
    )
    quarantine_without_email: Flag = Field(
        default=False,
        description="Review rule: quarantine an invoice whose account has no invoice email",
    )
    payment_terms_days: PaymentTermsDays | None = Field(
        default=None,
        description="Net days from an invoice's issue to its due date, 0 to 365, for the "
        f"group's accounts without terms of their own; default: {DEFAULT_PAYMENT_TERMS_DAYS}",
    )
    dunning: DunningRecord | None = Field(
        default=None,
        description="What happens as the group's invoices become overdue (runs with "
        "dunning on); default: nothing",
    )
    suspended_billing: SuspendedBilling = Field(
        default=SuspendedBilling.BILL,
        description="A suspended account's runs: bill (as usual) or hold_invoices (billed, "
        "its invoices held until it is reinstated)",
    )
    issuing_entity: Identifier | None = Field(
        default=None,
        description="The id of the issuing entity that bills the group (in this file's "
        "entities or added before); default: the default entity (BILLRUN_SELLER_*)",
    )


class EntityRecord(EntityDetails):
    """A legal entity the deployment bills as: who its invoices say they are from,
    where they are paid and how they are numbered (`{year}`, `{seq:0N}`)."""

    id: Identifier


class ExchangeRateRecord(_Strict):
    """`1 base = rate quote` from `date` on (bill runs take the rates in effect on
    their posting date when they start)."""

    base: CurrencyCode
    quote: CurrencyCode
    rate: Annotated[
        Decimal, BeforeValidator(_decimal_string), AfterValidator(_positive), _AS_STRING
    ] = Field(description='How many quote one base buys, a decimal string: "1.0842"')
    date: Annotated[Day, Field(description="In effect from this date")]


class ImportDocument(_Strict):
    """Bill groups, accounts, their packages, one-off charges and usage.

    Importing it twice changes nothing."""

    base_currency: CurrencyCode | None = Field(
        default=None,
        description="The owner's base currency: every line also carries its amount in it "
        "(for reporting); runs then need a rate from each account currency to it",
    )
    exchange_rates: list[ExchangeRateRecord] = Field(default_factory=list)
    entities: list[EntityRecord] = Field(default_factory=list)
    bill_groups: list[BillGroupRecord] = Field(default_factory=list)
    accounts: list[AccountRecord] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    schema = ImportDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "billrun import file"
    return schema


def parse_import(raw: bytes, source: str) -> ImportDocument:
    """Parse and validate a whole import file, or raise InvalidInput listing every problem."""
    data = _json_document(raw, source)
    if not isinstance(data, dict):
        raise InvalidInput(source, [Problem("", 'must be a JSON object with an "accounts" list')])
    problems: list[Problem] = []
    unknown = sorted(set(data) - set(ImportDocument.model_fields))
    problems.extend(Problem(key, "unknown field") for key in unknown)
    raw_accounts = _section(data.get("accounts", []), "accounts", problems)
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
                    index,
                    account.id,
                    account.currency,
                    [(p.id, p) for p in account.packages],
                    [(c.id, c) for c in account.charges],
                    [(u.id, u) for u in account.usage],
                )
            )
    problems.extend(_cross_record_problems(checkable))
    problems.extend(_family_problems(accounts))
    entities = _entities(data.get("entities", []), problems)
    groups = _bill_groups(data.get("bill_groups", []), problems)
    rates = _exchange_rates(data.get("exchange_rates", []), problems)
    base_currency = data.get("base_currency")
    if base_currency is not None:
        try:
            _currency(base_currency)
        except ValueError as error:
            problems.append(Problem("base_currency", str(error)))
    if problems:
        raise InvalidInput(source, sorted(problems, key=_reading_order))
    return ImportDocument(
        base_currency=base_currency,
        exchange_rates=rates,
        entities=entities,
        bill_groups=groups,
        accounts=[account for _, account in accounts],
    )


MAX_NESTING = 16
"""An import file's deepest nesting is 6 (accounts[0].usage[0].field); deeper is
refused before validation, which would otherwise recurse without bound."""


class _DuplicateKeys(dict[str, Any]):
    """A JSON object that named some keys more than once (the last would win)."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    flagged = _DuplicateKeys(found)
    seen: set[str] = set()
    flagged.duplicates = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return flagged


def _json_document(raw: bytes, source: str) -> Any:
    """The parsed JSON, or InvalidInput: not JSON, nested too deeply, a number too
    long to read, or a key named twice in one object (refused with its path rather
    than letting the last one silently win)."""
    try:
        data = json.loads(raw, object_pairs_hook=_object)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(source, [Problem("", f"not valid JSON: {error}")]) from None
    except RecursionError:
        raise InvalidInput(
            source, [Problem("", f"nested too deeply (at most {MAX_NESTING} levels)")]
        ) from None
    except ValueError:  # Python refuses to read an integer of more than 4,300 digits
        raise InvalidInput(
            source, [Problem("", "a number of more than 4300 digits: nothing billrun takes")]
        ) from None
    problems: list[Problem] = []
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if len(path) > MAX_NESTING:
            where = format_path(path[:MAX_NESTING])
            problems.append(Problem(where, f"nested too deeply (at most {MAX_NESTING} levels)"))
            break
        if isinstance(value, _DuplicateKeys):
            problems.extend(
                Problem(format_path((*path, key)), "named twice in the same object")
                for key in dict.fromkeys(value.duplicates)
            )
        if isinstance(value, dict):
            stack.extend(((*path, key), item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, index), item) for index, item in enumerate(value))
    if problems:
        raise InvalidInput(source, sorted(problems, key=_reading_order))
    return data


RecordT = TypeVar("RecordT", bound=BaseModel)


def _section(raw: Any, name: str, problems: list[Problem]) -> list[Any]:
    """A list at the top of the file; anything else is a problem and reads as empty."""
    if isinstance(raw, list):
        return raw
    problems.append(Problem(name, "must be a list"))
    return []


def _validated(
    model: type[RecordT], record: Any, section: str, index: int, problems: list[Problem]
) -> RecordT | None:
    """`record` as `model`, or None with each of its problems, located in the file."""
    try:
        return model.model_validate(record)
    except ValidationError as error:
        problems.extend(_problem(e, (section, index)) for e in error.errors())
        return None


def _seen_before(
    seen: dict[str, int], section: str, index: int, record_id: str, problems: list[Problem]
) -> bool:
    """Whether an earlier record of `section` has this id (a problem); else remember it."""
    if record_id in seen:
        problems.append(
            Problem(
                f"{section}[{index}].id",
                f"duplicate of {section}[{seen[record_id]}].id: {json.dumps(record_id)}",
            )
        )
        return True
    seen[record_id] = index
    return False


def _exchange_rates(raw: Any, problems: list[Problem]) -> list[ExchangeRateRecord]:
    rates: list[ExchangeRateRecord] = []
    seen: dict[tuple[str, str, date], int] = {}
    for index, record in enumerate(_section(raw, "exchange_rates", problems)):
        where = f"exchange_rates[{index}]"
        rate = _validated(ExchangeRateRecord, record, "exchange_rates", index, problems)
        if rate is None:
            continue
        key = (rate.base, rate.quote, rate.date)
        if rate.base == rate.quote:
            problems.append(Problem(f"{where}.quote", f"the same currency as base: {rate.base}"))
        elif key in seen:
            problems.append(
                Problem(where, f"duplicate of exchange_rates[{seen[key]}]: "
                               f"{rate.base}/{rate.quote} on {rate.date}")
            )  # fmt: skip
        else:
            seen[key] = index
            rates.append(rate)
    return rates


def _entities(raw: Any, problems: list[Problem]) -> list[EntityRecord]:
    entities: list[EntityRecord] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(_section(raw, "entities", problems)):
        entity = _validated(EntityRecord, record, "entities", index, problems)
        if entity is None:
            continue
        try:
            IssuingEntity.create(entity.id)
        except DomainError as refused:
            problems.append(Problem(f"entities[{index}].id", str(refused)))
            continue
        borrowed = borrowed_format(entity.id, entity)
        if borrowed:
            problems.append(Problem(f"entities[{index}]", borrowed))
            continue
        if not _seen_before(seen, "entities", index, entity.id, problems):
            entities.append(entity)
    return entities


def _bill_groups(raw: Any, problems: list[Problem]) -> list[BillGroupRecord]:
    groups: list[BillGroupRecord] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(_section(raw, "bill_groups", problems)):
        group = _validated(BillGroupRecord, record, "bill_groups", index, problems)
        if group is None:
            # The stages valid on their own are still checked as a ladder, so a bad
            # field does not hide a stage out of order until the next attempt.
            problems.extend(_salvaged_ladder_problems(record, f"bill_groups[{index}].dunning"))
            continue
        if group.dunning is not None:
            ladder = _ladder_problems(
                list(enumerate(group.dunning.stages)), f"bill_groups[{index}].dunning"
            )
            problems.extend(ladder)
            if not ladder:
                try:
                    group.dunning.rules()
                except DomainError as refused:  # a rule of the domain's not checked above
                    problems.append(Problem(f"bill_groups[{index}].dunning", str(refused)))
        if not _seen_before(seen, "bill_groups", index, group.id, problems):
            groups.append(group)
    return groups


def _salvaged_ladder_problems(record: Any, where: str) -> list[Problem]:
    """The ladder checks of an invalid bill group's stages that are valid on their own."""
    dunning = record.get("dunning") if isinstance(record, dict) else None
    stages = dunning.get("stages") if isinstance(dunning, dict) else None
    valid: list[tuple[int, DunningStageRecord]] = []
    for s, stage in enumerate(stages if isinstance(stages, list) else []):
        try:
            valid.append((s, DunningStageRecord.model_validate(stage)))
        except ValidationError:
            continue
    return _ladder_problems(valid, where)


def _ladder_problems(stages: list[tuple[int, DunningStageRecord]], where: str) -> list[Problem]:
    """The domain's ladder rules (`DunningRules.checked`), each with its path: stages in
    increasing days overdue, each with an action; a template only on a notifying stage."""
    problems: list[Problem] = []
    previous: tuple[int, DunningStageRecord] | None = None
    for s, stage in stages:
        at = f"{where}.stages[{s}]"
        if previous is not None and stage.days_overdue <= previous[1].days_overdue:
            problems.append(
                Problem(
                    f"{at}.days_overdue",
                    f"{stage.days_overdue} is not after stages[{previous[0]}]'s "
                    f"{previous[1].days_overdue}: stages are in increasing days overdue",
                )
            )
        previous = (s, stage)
        if not stage.stage().actions:
            problems.append(
                Problem(at, "the stage has no action: notify, late_fee, late_fee_percent "
                            "or suspend")
            )  # fmt: skip
        if stage.template is not None and not stage.notify:
            problems.append(
                Problem(f"{at}.template", "a notice template on a stage that does not notify")
            )
    return problems


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
        message = _date_problem(given)
    elif kind == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        message = f"must be one of {expected}, not {json.dumps(given, default=str)}"
    else:
        message = f"{error['msg']}: {json.dumps(given, default=str)}"
    return Problem(format_path(location), message)


def _date_problem(given: Any) -> str:
    """The one date rule's message (a format error, or a day the calendar lacks):
    domain/shared/inputs' own, as the usage CSV's `parse_date` reports it too."""
    if isinstance(given, str):
        try:
            parse_iso_date(given)
        except InputRefused as error:
            return str(error)
    return f"not a date (YYYY-MM-DD): {json.dumps(given, default=str)}"


class _Checkable(NamedTuple):
    """What the cross-record checks need from an account record, valid or not."""

    record_index: int
    id: str | None
    currency: str | None
    packages: list[tuple[str | None, PackageRecord | None]]
    charges: list[tuple[str | None, ChargeRecord | None]]
    usage: list[tuple[str | None, UsageRecord | None]]


Record = TypeVar("Record", PackageRecord, ChargeRecord, UsageRecord)


def _salvage(index: int, record: Any) -> _Checkable:
    """The parts of an invalid account record that are valid on their own."""
    if not isinstance(record, dict):
        return _Checkable(index, None, None, [], [], [])
    currency = record.get("currency")
    return _Checkable(
        index,
        _identifier_or_none(record.get("id")),
        currency if isinstance(currency, str) and is_currency(currency) else None,
        _salvage_list(record.get("packages"), PackageRecord),
        _salvage_list(record.get("charges"), ChargeRecord),
        _salvage_list(record.get("usage"), UsageRecord),
    )


def _salvage_list(raw: Any, model: type[Record]) -> list[tuple[str | None, Record | None]]:
    """Each item's id (when valid) and the item (when valid as a whole)."""
    items: list[tuple[str | None, Record | None]] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            valid = model.model_validate(item)
        except ValidationError:
            raw_id = item.get("id") if isinstance(item, dict) else None
            items.append((_identifier_or_none(raw_id), None))
        else:
            items.append((valid.id, valid))
    return items


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
        problems.extend(_duplicate_ids(account.packages, where, "packages"))
        problems.extend(_duplicate_ids(account.charges, where, "charges"))
        problems.extend(_duplicate_ids(account.usage, where, "usage"))
        # The first record of each package id is the one imported; an invalid one
        # is known by its id but its terms cannot be checked against.
        packages: dict[str, PackageRecord | None] = {}
        for p, (package_id, package) in enumerate(account.packages):
            if package_id is not None:
                packages.setdefault(package_id, package)
            if package is not None:
                problems.extend(
                    _package_problems(package, account.currency, f"{where}.packages[{p}]")
                )
        for c, (_, charge) in enumerate(account.charges):
            if charge is not None and account.currency is not None:
                problems.extend(
                    _amount_problems(
                        charge.amount, account.currency, f"{where}.charges[{c}].amount"
                    )
                )
        for u, (_, usage) in enumerate(account.usage):
            if usage is not None and packages.get(usage.package_id) is not None:
                package = packages[usage.package_id]
                assert package is not None
                problems.extend(_usage_problems(usage, package, f"{where}.usage[{u}]"))
        # A usage record naming a package this file does not have may name one
        # imported before: `importing.import_accounts` checks it against the store.
    return problems


def _family_problems(accounts: list[tuple[int, AccountRecord]]) -> list[Problem]:
    """One level of invoicers, within the file: an account billed onto another's
    invoices is nobody's invoicer. Invoicers not in the file are checked against the
    stored accounts by `importing.import_accounts`."""
    invoicer_of = {record.id: record.invoicer for _, record in accounts}
    problems: list[Problem] = []
    for index, record in accounts:
        invoicer = record.invoicer
        if invoicer is None:
            continue
        # A family's invoices are its invoicer's, posted to its receivables: the
        # invoicer's payment terms and auto-pay are the family's.
        if record.payment_terms_days is not None:
            problems.append(
                Problem(
                    f"accounts[{index}].payment_terms_days",
                    f"{record.id} is billed onto {invoicer}'s invoices, which carry "
                    f"{invoicer}'s payment terms: set them on {invoicer}",
                )
            )
        if record.autopay_token is not None:
            problems.append(
                Problem(
                    f"accounts[{index}].autopay_token",
                    f"{record.id} is billed onto {invoicer}'s invoices, which {invoicer}'s "
                    f"auto-pay pays: set it on {invoicer}",
                )
            )
        where = f"accounts[{index}].invoicer"
        if invoicer == record.id:
            problems.append(Problem(where, "an account cannot be its own invoicer"))
        elif invoicer_of.get(invoicer) is not None:
            problems.append(
                Problem(
                    where,
                    f"{invoicer} is itself billed onto {invoicer_of[invoicer]}'s invoices; "
                    "an invoicer has no invoicer (one level)",
                )
            )
    return problems


def _duplicate_ids(items: list[tuple[str | None, Any]], where: str, field: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, (item_id, _) in enumerate(items):
        if item_id is None:
            continue
        if item_id in seen:
            problems.append(
                Problem(
                    f"{where}.{field}[{i}].id",
                    f"duplicate of {where}.{field}[{seen[item_id]}].id: {json.dumps(item_id)}",
                )
            )
        else:
            seen[item_id] = i
    return problems


def _amount_problems(amount: Decimal, currency: str, at: str) -> list[Problem]:
    """An amount must be billable as it is: at most the currency's minor unit."""
    shown = json.dumps(str(amount))
    try:
        rounded = round_to_currency(amount, currency)
    except ValueError:
        return [Problem(at, f"{shown} is too large for {currency}")]
    if amount != rounded:
        return [
            Problem(
                at,
                f"{shown} has more decimals than {currency} allows ({MINOR_UNITS[currency]})",
            )
        ]
    return []


def _package_problems(package: PackageRecord, currency: str | None, at: str) -> list[Problem]:
    """A package's own rules; the amount is checked only when the currency is valid."""
    problems: list[Problem] = []
    if currency is not None:
        problems.extend(_amount_problems(package.amount, currency, f"{at}.amount"))
    if package.end_date is not None and package.end_date < package.start_date:
        problems.append(
            Problem(
                f"{at}.end_date", f"{package.end_date} is before start_date {package.start_date}"
            )
        )
    anchor_problem = _anchor_problem(package)
    if anchor_problem is not None:
        problems.append(Problem(f"{at}.anchor_date", anchor_problem))
    elif package.next_bill_date is not None:
        try:
            index = index_of_bill_date(package.anchor, package.frequency, package.next_bill_date)
        except NotABillDate as error:
            problems.append(Problem(f"{at}.next_bill_date", str(error)))
        else:
            if package.timing is Timing.ARREARS and index < 1:
                after = "start" if package.anchor_date is None else "anchor"
                problems.append(
                    Problem(
                        f"{at}.next_bill_date",
                        f"an arrears package's first bill date is one period after its "
                        f"{after} date",
                    )
                )
    return problems


def _anchor_problem(package: PackageRecord) -> str | None:
    """The domain's rule: on or before the start, less than one period before it."""
    anchor, start = package.anchor_date, package.start_date
    if anchor is None:
        return None
    if anchor > start:
        return f"{anchor} is after start_date {start}"
    following = bill_date(anchor, package.frequency, 1)
    if following <= start:
        return (
            f"{anchor} is a whole {package.frequency.value} period or more before start_date "
            f"{start} (the next bill date after it, {following}, is not after the start); "
            "an anchor must be less than one period before the start"
        )
    return None


def _usage_problems(usage: UsageRecord, package: PackageRecord, at: str) -> list[Problem]:
    """A usage record against its package's terms, as this file states them."""
    problems: list[Problem] = []
    name = json.dumps(package.id)
    if usage.unit_price is None and package.usage_rate is None:
        problems.append(Problem(f"{at}.unit_price", f"required: package {name} has no usage_rate"))
    if usage.occurred_on < package.start_date:
        problems.append(
            Problem(
                f"{at}.occurred_on",
                f"{usage.occurred_on} is before package {name}'s start_date {package.start_date}",
            )
        )
    elif package.end_date is not None and usage.occurred_on > package.end_date:
        problems.append(
            Problem(
                f"{at}.occurred_on",
                f"{usage.occurred_on} is after package {name}'s end_date {package.end_date}",
            )
        )
    return problems
