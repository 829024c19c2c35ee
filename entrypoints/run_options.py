"""The command-line options of a run's settings, shared by `run schedule` and
`schedule add` (a schedule's runs take the same settings), and their reading."""

from __future__ import annotations

from typing import Annotated

import typer

from domain.bill_run import RunSettings, Selection
from entrypoints.common import UsageError

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
) -> RunSettings:
    """The settings the options name; refused when they leave nothing to bill."""
    if not (packages or usage or charges or contracts):
        raise UsageError(
            "--no-packages, --no-usage, --no-charges and --no-contracts together "
            "leave nothing to bill"
        )
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
    )
