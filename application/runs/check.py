"""Billing checks before a run (`billrun run check`): errors stop execution, warnings
are for the operator to read.

Errors (execution refuses to start while any remains):
- `missing_rate`: a currency conversion the run may need has no rate in effect
  on its posting date (members billed onto an invoicer in another currency, or
  account currencies against the base currency);
- `no_invoice_email`: an account whose bill group delivers by email has no
  invoice email, and the run delivers invoices;
- `no_payment_gateway`: the run collects payments, but the configured payment
  gateway (BILLRUN_PAYMENT_GATEWAY) cannot be loaded;
- `demo_seller`: the run renders invoices, but the seller printed on them (and
  the From of their emails) is still the built-in demo seller's name, IBAN or
  email (BILLRUN_SELLER_NAME, _IBAN, _EMAIL unset); only `billrun demo`, which
  checks no seller (`Billing.seller` None), bills under it.

Warnings:
- `no_invoice_email` for accounts whose group does not email (or a run that
  does not deliver); never for a family member (its invoicer gets the invoice);
- `zero_price`, `negative_price`: an active package priced 0 or below (a
  recurring discount may be meant; a typo often is not);
- `overlapping_run`: another unfinished run (scheduled, running or failed; not
  completed or cancelled) bills an overlapping period for some of the same
  accounts;
- `no_buyer_address` (runs that render invoices, as the next three): an invoicing
  account without a postal address (country included): its e-invoices fail
  EN 16931 (BR-10, BR-11);
- `no_en16931_currency`: an account billed in a currency of 3 minor digits
  (KWD, BHD, ...): it gets no CII or Factur-X, and a UBL that claims no EN 16931;
- `not_on_peppol`: the issuing entity of the account's bill group (the default
  entity when it names none) issues Peppol BIS invoices but the account has no
  electronic address (scheme and id): its UBL is plain EN 16931;
- `stranded_bill_date`: a package bill date before the run's period that no run
  billed (no run covered it): the run will not bill it (seed: a run bills the
  bill dates inside its period) unless it catches up (`--catch-up`); listed as
  account/package@bill date.

`missing_rate` looks only at the accounts the run selects (and their families),
so a currency no selected account uses does not hold the run up.

The accounts are read page by page like a run reads them (constant memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from application.receivables.collection import payment_gateway
from application.shared.app import Billing
from application.shared.errors import ApplicationError
from application.shared.ports import Seller
from domain.billing.account import Account
from domain.billing.events import AccountDetailsChanged, AccountOpened, InvoicerChanged
from domain.billing.exchange_rates import RateSnapshot
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.events import BillGroupConfigured
from domain.invoicing.group_terms import DeliveryChannel
from domain.runs.bill_run import BillRun
from domain.runs.events import RunScheduled
from domain.runs.settings import RunStatus
from domain.shared.ids import account_uuid
from domain.shared.money import minor_units
from domain.shared.periods import Period
from infrastructure.topics import topic_of

ACCOUNT_OPENED = topic_of(AccountOpened)
ACCOUNT_DETAILS_CHANGED = topic_of(AccountDetailsChanged)
INVOICER_CHANGED = topic_of(InvoicerChanged)
RUN_SCHEDULED = topic_of(RunScheduled)
BILL_GROUP_CONFIGURED = topic_of(BillGroupConfigured)
PAGE = 1000
EXAMPLES = 10

Severity = Literal["error", "warning"]
_SELLER_FIELDS = {
    "BILLRUN_SELLER_NAME": "name",
    "BILLRUN_SELLER_IBAN": "IBAN",
    "BILLRUN_SELLER_EMAIL": "email",
}


@dataclass
class Finding:
    severity: Severity
    check: str
    message: str
    accounts: list[str] = field(default_factory=list)
    """Up to ten examples; `count` says how many there are."""
    count: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "check": self.check,
            "message": self.message,
            "count": self.count,
            "accounts": self.accounts,
        }


@dataclass
class CheckReport:
    run_id: str
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "errors": [f.as_json() for f in self.errors],
            "warnings": [f.as_json() for f in self.warnings],
        }


def missing_rates(
    billing: Billing, run: BillRun, log_position: int
) -> tuple[RateSnapshot, list[str]]:
    """The rates in effect on the run's posting date, and the pairs it may need that
    have none (read from the log: the currencies of the accounts the run selects,
    their members' against their invoicers')."""
    snapshot = billing.get_rate_book().snapshot(run.posting_date)
    currencies, pairs = billing.queries.currency_pairs(
        ACCOUNT_OPENED,
        INVOICER_CHANGED,
        log_position,
        ACCOUNT_DETAILS_CHANGED,
        run.selection.accounts,
        run.selection.groups,
    )
    needed = set(pairs)
    base = snapshot.base_currency
    if base is not None:
        needed |= {(currency, base) for currency in currencies if currency != base}
    return snapshot, snapshot.missing(needed)


class _Findings:
    """The findings of one check, merged by (severity, check) with a count and up to
    `EXAMPLES` accounts each."""

    def __init__(self) -> None:
        self.found: dict[tuple[Severity, str], Finding] = {}

    def note(
        self, severity: Severity, check: str, message: str, account: str | None = None
    ) -> None:
        finding = self.found.setdefault((severity, check), Finding(severity, check, message))
        finding.count += 1
        if account is not None and len(finding.accounts) < EXAMPLES:
            finding.accounts.append(account)

    def errors(self) -> list[Finding]:
        return [f for f in self.found.values() if f.severity == "error"]


def _check_run_wide(billing: Billing, run: BillRun, head: int, findings: _Findings) -> RateSnapshot:
    """The errors that concern the whole run, not one account: rates, the seller, the
    gateway. Returns the run's rates (`missing_rates`), so execution computes them
    once, against the same head as the check."""
    note = findings.note
    snapshot, missing = missing_rates(billing, run, head)
    for pair in missing:
        base, quote = pair.split("/")
        note("error", "missing_rate",
             f"no exchange rate {pair} in effect on {run.posting_date} "
             f"(billrun rates set {base} {quote} RATE --date {run.posting_date})")  # fmt: skip
    seller = billing.seller
    renders = run.settings.run_invoices and run.settings.render_invoices
    if seller is not None and renders and seller.demo_settings():
        variables = seller.demo_settings()
        what = ", ".join(_SELLER_FIELDS[v] for v in variables)
        note("error", "demo_seller",
             f"invoices would go out under the built-in demo seller's {what}: set "
             f"{', '.join(variables)} (outside `billrun demo`)")  # fmt: skip
    if run.settings.collect_payments:
        try:
            payment_gateway(billing)
        except ApplicationError as error:
            note("error", "no_payment_gateway", f"the run collects payments, but {error}")
    return snapshot


def _check_accounts(billing: Billing, run: BillRun, head: int, findings: _Findings) -> None:
    """Each account in scope: its invoice email against its group's delivery, and
    its packages (prices, stranded bill dates)."""
    note = findings.note
    groups: dict[str, BillGroup] = {}
    issuers: dict[str | None, Seller | None] = {}
    for account in _accounts_in_scope(billing, run, head):
        group = groups.get(account.bill_group) or billing.get_bill_group(account.bill_group)
        groups[account.bill_group] = group
        if account.invoice_email is None:
            emailed = group.delivery_channel is DeliveryChannel.EMAIL
            if emailed and run.settings.deliver_invoices and account.invoicer is None:
                note("error", "no_invoice_email",
                     f"no invoice email, and bill group {group.group_id} delivers by email",
                     account.account_id)  # fmt: skip
            elif account.invoicer is None:
                note("warning", "no_invoice_email", "no invoice email", account.account_id)
        _check_packages(account, run, note)
        if account.invoicer is None and run.settings.render_invoices:
            issuer = issuers.get(group.issuing_entity)
            if group.issuing_entity not in issuers:
                issuer = issuers[group.issuing_entity] = _issuer(billing, group.issuing_entity)
            _check_einvoice_buyer(account, issuer, note)


def _issuer(billing: Billing, entity_id: str | None) -> Seller | None:
    """The seller a bill group's invoices are issued by: its issuing entity, or the
    default entity (the BILLRUN_SELLER_* settings) when it names none."""
    entity = None if entity_id is None else billing.find_entity(entity_id)
    if entity is None or entity.details is None or billing.seller is None:
        return billing.seller
    return Seller.from_entity(entity.details, billing.seller)


def check_run(billing: Billing, run_id: str) -> CheckReport:
    """The run's findings (`billrun run check`), errors first."""
    run = billing.get_run(run_id)
    head = billing.queries.head()
    findings = _Findings()
    _check_run_wide(billing, run, head, findings)
    _check_accounts(billing, run, head, findings)
    for other in _overlapping_runs(billing, run):
        findings.note("warning", "overlapping_run",
             f"run {other.run_id} ({other.status.value}, {other.period}, "
             f"{other.selection.describe()}) also bills some of these accounts",
             None)  # fmt: skip
    ordered = sorted(findings.found.values(), key=lambda f: (f.severity != "error", f.check))
    return CheckReport(run_id, ordered)


@dataclass(frozen=True)
class StartCheck:
    """What execution reads before it starts a run, all against one log head: the
    errors that refuse the start, and the rates the run fixes (computed once)."""

    report: CheckReport
    head: int
    rates: RateSnapshot


def check_before_start(billing: Billing, run: BillRun) -> StartCheck:
    """The run's errors only, for the run as the executor holds it (not read
    again). The account scan is skipped when no bill group delivers by email, as
    nothing else it finds can be an error."""
    head = billing.queries.head()
    findings = _Findings()
    rates = _check_run_wide(billing, run, head, findings)
    if run.settings.deliver_invoices and _some_group_emails(billing):
        _check_accounts(billing, run, head, findings)
    return StartCheck(CheckReport(run.run_id, findings.errors()), head, rates)


def _check_einvoice_buyer(
    account: Account, seller: Seller | None, note: Callable[[Severity, str, str, str], None]
) -> None:
    """Warnings for a buyer whose e-invoices fall short (docs/einvoicing.md)."""
    if not account.buyer.has_address:
        note("warning", "no_buyer_address",
             "no postal address: its e-invoices fail EN 16931 (BR-10, BR-11)",
             account.account_id)  # fmt: skip
    if minor_units(account.currency) > 2:
        note("warning", "no_en16931_currency",
             "bills in a currency of 3 decimals: no CII or Factur-X, and its UBL claims no "
             "EN 16931 conformance", account.account_id)  # fmt: skip
    if seller is not None and seller.peppol and account.buyer.endpoint_id is None:
        note("warning", "not_on_peppol",
             f"no electronic address: its UBL from {seller.name} is EN 16931, not Peppol BIS",
             account.account_id)  # fmt: skip


def _check_packages(
    account: Account, run: BillRun, note: Callable[[Severity, str, str, str], None]
) -> None:
    for package in account.packages.values():
        terms = package.terms
        if terms.end_date is not None and terms.end_date < run.period.start:
            continue
        if terms.amount < 0:
            note("warning", "negative_price", "an active package with a negative price",
                 f"{account.account_id}/{terms.package_id}")  # fmt: skip
        elif terms.amount == 0:
            note("warning", "zero_price", "an active package priced 0",
                 f"{account.account_id}/{terms.package_id}")  # fmt: skip
    if not run.settings.catch_up:
        for package_id, day in account.stranded(run.period, run.settings.scope):
            note("warning", "stranded_bill_date",
                 "a package bill date before the run's period that no run billed: "
                 "this run leaves it owed (schedule it with --catch-up to bill it)",
                 f"{account.account_id}/{package_id}@{day}")  # fmt: skip


def _some_group_emails(billing: Billing) -> bool:
    ids = billing.queries.originators(BILL_GROUP_CONFIGURED)
    return any(
        group.delivery_channel is DeliveryChannel.EMAIL
        for group in billing.load_many(BillGroup, ids).values()
    )


def _accounts_in_scope(billing: Billing, run: BillRun, head: int) -> Iterator[Account]:
    after = 0
    while True:
        positions = billing.queries.positions(ACCOUNT_OPENED, after=after, upto=head, limit=PAGE)
        if not positions:
            return
        accounts = billing.load_many(Account, [p.originator_id for p in positions])
        for position in positions:
            account = accounts[position.originator_id]
            if run.selection.includes(account.account_id, account.bill_group):
                yield account
        after = positions[-1].notification_id


def count_in_scope(billing: Billing, run: BillRun, head: int) -> int:
    """The accounts the run will reach (`accounts_in_scope`): the invoicers its
    selection covers and their members, as opened up to `head`. Everybody is one
    count query; a selection pages through the accounts it may cover, as groups
    are read from each account's current state."""
    if run.selection.is_all:
        return billing.queries.count(ACCOUNT_OPENED, head, None)
    ids = None
    if run.selection.accounts and not run.selection.groups:
        ids = [account_uuid(a) for a in run.selection.accounts]
    count, after = 0, 0
    while True:
        positions = billing.queries.positions(
            ACCOUNT_OPENED, after=after, upto=head, limit=PAGE, originator_ids=ids
        )
        if not positions:
            return count
        accounts = billing.load_many(Account, [p.originator_id for p in positions])
        count += sum(
            1 + len(account.members)
            for account in accounts.values()
            if account.invoicer is None
            and run.selection.includes(account.account_id, account.bill_group)
        )
        after = positions[-1].notification_id


def _overlapping_runs(billing: Billing, run: BillRun) -> list[BillRun]:
    runs = billing.load_many(BillRun, billing.queries.originators(RUN_SCHEDULED)).values()
    return [
        other
        for other in runs
        if other.run_id != run.run_id
        and other.status not in (RunStatus.COMPLETED, RunStatus.CANCELLED)
        and _overlap(other.period, run.period)
        and _may_share_accounts(other, run)
    ]


def _overlap(a: Period, b: Period) -> bool:
    return a.start <= b.end and b.start <= a.end


def _may_share_accounts(a: BillRun, b: BillRun) -> bool:
    if a.selection.is_all or b.selection.is_all:
        return True
    return bool(
        set(a.selection.accounts) & set(b.selection.accounts)
        or set(a.selection.groups) & set(b.selection.groups)
        or (a.selection.groups and b.selection.accounts)
        or (b.selection.groups and a.selection.accounts)
    )
