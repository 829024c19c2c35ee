"""`billrun entity ...`: the legal entities a deployment bills as."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from application.invoicing.entities import (
    add_entity,
    default_entity,
    entity_details,
    entity_json,
    recorded_entities,
)
from application.shared.errors import ApplicationError
from application.shared.ports import Seller
from domain.invoicing.entity_details import DEFAULT_ENTITY
from entrypoints import output
from entrypoints.common import JsonFlag, refusals, runtime

entity_app = typer.Typer(
    help="The legal entities invoices are issued by: each with its own address, ids, "
    "bank accounts and gapless numbering; a bill group names the one that bills it.",
    no_args_is_help=True,
)


class UnknownEntity(ApplicationError):
    pass


def _bank(text: str) -> dict[str, Any]:
    currency, _, account = text.partition("=")
    account_id, _, bic = account.partition("/")
    if len(currency) != 3 or not account_id:
        raise typer.BadParameter(
            f"expected CUR=ACCOUNT[/BIC], e.g. EUR=BE71096123456769, not {text!r}"
        )
    return {"currency": currency.upper(), "account_id": account_id, "bic": bic or None}


@entity_app.command("add")
@refusals
def entity_add(
    entity_id: Annotated[str, typer.Argument(metavar="ID", help="e.g. be (a-z, 0-9, - and _).")],
    name: Annotated[str, typer.Option("--name", help="Legal name (BT-27).")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166-1 alpha-2, e.g. BE.")],
    bank: Annotated[
        list[str],
        typer.Option(
            "--bank",
            metavar="CUR=ACCOUNT[/BIC]",
            help="Where invoices in CUR are paid; repeat per currency (the first is the "
            "main account). SEPA credit transfer is stated for EUR only.",
        ),
    ],
    street: Annotated[str | None, typer.Option(help="Street and number.")] = None,
    city: Annotated[str | None, typer.Option(help="City.")] = None,
    postcode: Annotated[str | None, typer.Option(help="Postal code.")] = None,
    vat_id: Annotated[str | None, typer.Option(help="VAT id, e.g. BE0123456749.")] = None,
    company_id: Annotated[str | None, typer.Option(help="Legal registration id (BT-30).")] = None,
    email: Annotated[
        str | None, typer.Option(help="Contact email (default: the seller's).")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(metavar="SCHEME:ID", help="Electronic address, e.g. 0208:0123456749."),
    ] = None,
    peppol: Annotated[
        bool, typer.Option(help="Issue Peppol BIS 3.0 UBL to buyers on Peppol (needs --endpoint).")
    ] = False,
    terms_days: Annotated[int, typer.Option(help="Default payment terms, days net.")] = 30,
    invoice_format: Annotated[
        str | None,
        typer.Option(
            help="Invoice numbers: text with {year} and one {seq} or {seq:0N}; "
            "default: ID-{year}-{seq:06} (BE-2026-000001)."
        ),
    ] = None,
    credit_note_format: Annotated[
        str | None,
        typer.Option(
            help="Credit note numbers, same placeholders; default: ID-CN-{year}-{seq:06}."
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Record an issuing entity (a bad field: refused with its name and value).

    Nothing is written when anything is refused.

    Example: billrun entity add be --name "Billrun Belgium SRL" --country BE
    --street "1 Ledger Street" --city Brussels --postcode 1000 --vat-id BE0123456749
    --endpoint 0208:0123456749 --peppol --bank EUR=BE71096123456769
    --invoice-format "BE-{year}-{seq:06}"

    Then name it in a bill group of the import file: "issuing_entity": "be".
    """
    scheme, _, identifier = (endpoint or "").partition(":")
    if endpoint is not None and (not scheme or not identifier):
        raise typer.BadParameter(f"--endpoint: expected SCHEME:ID, not {endpoint!r}")
    fields = {
        "legal_name": name, "country_code": country, "street": street, "city": city,
        "postal_code": postcode, "vat_id": vat_id, "company_id": company_id, "email": email,
        "endpoint_scheme": scheme or None, "endpoint_id": identifier or None, "peppol": peppol,
        "bank_accounts": [_bank(b) for b in bank], "payment_terms_days": terms_days,
        "invoice_number_format": invoice_format or f"{entity_id.upper()}-{{year}}-{{seq:06}}",
        "credit_note_number_format": (
            credit_note_format or f"{entity_id.upper()}-CN-{{year}}-{{seq:06}}"
        ),
    }  # fmt: skip
    details = entity_details(fields, f"entity {entity_id}")
    with runtime() as rt:
        entity = add_entity(rt.billing, entity_id, details)
    if json_out:
        output.print_json(entity_json(entity))
        return
    first = entity.number(1, "invoice", rt.billing.clock().year)
    output.console.print(f"entity {entity_id} recorded: its first invoice will be {first}")


@entity_app.command("list")
@refusals
def entity_list(json_out: JsonFlag = False) -> None:
    """List the issuing entities: the default one (BILLRUN_SELLER_*) first."""
    with runtime() as rt:
        default = default_entity(rt.billing.seller or Seller())
        rows = [default, *(entity_json(e) for e in recorded_entities(rt.billing))]
    if json_out:
        output.print_json({"entities": rows})
        return
    table = output.compact_table("Issuing entities")
    for column in ("id", "legal name", "country", "VAT id", "Peppol", "invoice numbers"):
        table.add_column(column, no_wrap=column != "legal name")
    for row in rows:
        table.add_row(
            row["id"], row["legal_name"], row["country_code"], row["vat_id"] or "-",
            "yes" if row["peppol"] else "no", row["invoice_number_format"],
        )  # fmt: skip
    output.print_table(table)


@entity_app.command("show")
@refusals
def entity_show(
    entity_id: Annotated[str, typer.Argument(metavar="ID", help="e.g. be, or default.")],
    json_out: JsonFlag = False,
) -> None:
    """Show one issuing entity's details (`default`: the BILLRUN_SELLER_* settings)."""
    with runtime() as rt:
        if entity_id == DEFAULT_ENTITY:
            shown = default_entity(rt.billing.seller or Seller())
        else:
            found = rt.billing.find_entity(entity_id)
            if found is None:
                raise UnknownEntity(f"no issuing entity {entity_id!r} (see `billrun entity list`)")
            shown = entity_json(found)
    if json_out:
        output.print_json(shown)
        return
    for key, value in shown.items():
        text = _banks(value) if key == "bank_accounts" else value
        output.console.print(f"{key.replace('_', ' ')}: {text if text is not None else '-'}")


def _banks(accounts: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{a['currency'] or 'any'}={a['account_id']}" + (f"/{a['bic']}" if a["bic"] else "")
        for a in accounts
    )
