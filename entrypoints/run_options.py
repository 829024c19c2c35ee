"""The command-line options of a run's settings, shared by `run schedule` and
`schedule add` (a schedule's runs take the same settings), and their reading."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from domain.receivables.collection import CollectionType
from domain.runs.settings import RunSettings, Selection
from entrypoints.refusals import UsageError

Group = Annotated[list[str] | None, typer.Option(help="Bill only this bill group (repeat).")]
Account = Annotated[list[str] | None, typer.Option(help="Bill only this account (repeat).")]
Packages = Annotated[
    bool, typer.Option(help="Bill package periods whose bill date is in the period.")
]
Usage = Annotated[
    bool, typer.Option(help="Bill the unbilled usage of the packages due in the period.")
]
Charges = Annotated[
    bool, typer.Option(help="Bill one-off charges dated on or before the period end.")
]
Contracts = Annotated[
    bool,
    typer.Option(
        help="Bill contract penalties (early-termination fees, minimum-spend shortfalls) "
        "due by the period end, once each."
    ),
]
Category = Annotated[
    list[str] | None,
    typer.Option(help="Bill only packages and charges of this category (repeat)."),
]
CatchUp = Annotated[
    bool,
    typer.Option(
        "--catch-up",
        help="Also bill stranded package bill dates: before the period and never billed "
        "(no run covered them), each period its own line. Without it they stay owed and "
        "`run check` lists them.",
    ),
]
Invoices = Annotated[
    bool, typer.Option(help="Close and number invoices; off, lines wait on open invoices.")
]
Render = Annotated[
    bool, typer.Option(help="Render closed invoices to PDF and XML (by the worker).")
]
Deliver = Annotated[
    bool, typer.Option(help="Deliver rendered invoices by their bill group's channel.")
]
ApprovalRequired = Annotated[
    bool,
    typer.Option(
        "--approval-required",
        help="Deliver an invoice only once it is approved (billrun invoice approve).",
    ),
]

Dunning = Annotated[
    bool,
    typer.Option(
        help="First: apply each bill group's dunning rules to its overdue invoices as of "
        "the posting date (notices, late fees, suspension)."
    ),
]
CollectPayments = Annotated[
    bool,
    typer.Option(help="Last: collect from accounts on auto-pay, through the payment gateway."),
]
Collection = Annotated[
    CollectionType | None,
    typer.Option(
        "--collection-type",
        help="With --collect-payments: collect the whole balance (account_balance) or the "
        "invoices due (invoice_due_date). [default: account_balance]",
        show_default=False,
    ),
]


SETTING_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("group", Group, None),
    ("account", Account, None),
    ("packages", Packages, True),
    ("usage", Usage, True),
    ("charges", Charges, True),
    ("contracts", Contracts, True),
    ("category", Category, None),
    ("catch_up", CatchUp, False),
    ("invoices", Invoices, True),
    ("render", Render, True),
    ("deliver", Deliver, True),
    ("approval_required", ApprovalRequired, False),
    ("dunning", Dunning, False),
    ("collect_payments", CollectPayments, False),
    ("collection_type", Collection, None),
)
"""The options of a run's selection and settings, in the order `--help` lists them."""

Command = TypeVar("Command", bound=Callable[..., Any])


def takes_run_settings(command: Command) -> Command:
    """Declare the run-settings options once for every command that takes them.

    `command` has parameters `selection` and `settings`; typer sees the options
    of SETTING_OPTIONS in their place, and the command receives the Selection and
    RunSettings they name."""
    signature = inspect.signature(command, eval_str=True)
    names = list(signature.parameters)
    at = names.index("selection")
    own = [p for p in signature.parameters.values() if p.name not in ("selection", "settings")]
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
        for name, kind, default in SETTING_OPTIONS
    ]
    parameters = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at] + options + own[at:]
    ]

    @functools.wraps(command)
    def with_settings(**values: Any) -> Any:
        named = {name: values.pop(name) for name, _, _ in SETTING_OPTIONS}
        values["selection"] = selection(named.pop("group"), named.pop("account"))
        values["settings"] = run_settings(**named)
        return command(**values)

    with_settings.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_settings.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_settings  # type: ignore[return-value]


def selection(group: list[str] | None, account: list[str] | None) -> Selection:
    """No --group and no --account: every account."""
    return Selection(accounts=tuple(account or ()), groups=tuple(group or ()))


def run_settings(
    packages: bool,
    usage: bool,
    charges: bool,
    contracts: bool,
    category: list[str] | None,
    invoices: bool,
    render: bool,
    deliver: bool,
    approval_required: bool,
    dunning: bool = False,
    collect_payments: bool = False,
    collection_type: CollectionType | None = None,
    catch_up: bool = False,
) -> RunSettings:
    """The settings the options name; refused when they leave nothing to do (a run
    may only dun, or only collect)."""
    if not (packages or usage or charges or contracts or dunning or collect_payments):
        raise UsageError(
            "--no-packages, --no-usage, --no-charges and --no-contracts together "
            "leave nothing to bill (a run that only duns or collects: --dunning, "
            "--collect-payments)"
        )
    if collection_type is not None and not collect_payments:
        raise UsageError("--collection-type is for a run that collects (--collect-payments)")
    return RunSettings(
        bill_packages=packages,
        bill_usage=usage,
        bill_charges=charges,
        run_contracts=contracts,
        categories=tuple(dict.fromkeys(category or ())),
        run_invoices=invoices,
        render_invoices=render,
        deliver_invoices=deliver and render,
        approval_required=approval_required,
        run_dunning=dunning,
        collect_payments=collect_payments,
        collection_type=collection_type or CollectionType.ACCOUNT_BALANCE,
        catch_up=catch_up,
    )
