"""`billrun run documents`, `billrun invoice documents` and `billrun invoice pdf`:
invoice PDFs and e-invoices (UBL 2.1, CII, Factur-X).

Rendering is idempotent: a document already recorded for an invoice is not
rendered again, so these commands can be repeated and interrupted; they print
where each document is (in the content-addressed store under
BILLRUN_HOME/documents, or the copy made with --out).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

from application.invoicing.documents import (
    DOCUMENT_FORMATS,
    FILE_SUFFIXES,
    DocumentNotAvailable,
    InvoiceDocuments,
    invoice_documents,
    recorded_format,
)
from entrypoints import output
from entrypoints.common import JsonFlag, progress_bar, refusals, runtime
from entrypoints.presenters import resolve_invoice_id
from entrypoints.refusals import UsageError
from entrypoints.representations_invoices import document_json
from entrypoints.runtime import Runtime
from infrastructure.file_store import FileStore, documents_root


def _documents(rt: Runtime) -> tuple[InvoiceDocuments, FileStore]:
    return (
        invoice_documents(rt.billing, rt.settings),
        FileStore(documents_root(rt.settings)),
    )


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


FORMAT_HELP = (
    "pdf, ubl (UBL 2.1: EN 16931, Peppol BIS 3.0 for buyers on Peppol), cii (UN/CEFACT "
    "CII, EN 16931) or facturx (PDF/A-3b carrying its CII); repeat for several."
)

FormatOption = Annotated[
    list[str] | None, typer.Option("--format", "-f", help=FORMAT_HELP, show_default=False)
]


def _formats(names: list[str] | None, default: tuple[str, ...]) -> list[str]:
    """The recorded formats of `--format` names (refusing unknown ones), else `default`."""
    return list(dict.fromkeys(recorded_format(n) for n in names)) if names else list(default)


def _file_name(number: str, recorded: str) -> str:
    return f"{number}{FILE_SUFFIXES[recorded]}"


@refusals
def run_documents(
    run_id: str,
    formats: FormatOption = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="Generate PDFs (= --format pdf).")] = False,
    xml: Annotated[
        bool, typer.Option("--xml", help="Generate UBL 2.1 XML (= --format ubl).")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Also copy each document here: INV-00000042.pdf, .ubl.xml, .cii.xml, .facturx.pdf."
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Generate the documents of every closed invoice of a run (default: PDF and UBL).

    Documents already generated are not rendered again; every path is printed.
    An invoice that cannot have a format (CII and Factur-X need a currency of at
    most 2 decimals: not KWD, BHD) is listed as not available, with the reason.

    Example: billrun run documents 2026-01 --format facturx --out ./out
    """
    names = (formats or []) + [n for n, wanted in (("pdf", pdf), ("ubl", xml)) if wanted]
    wanted_formats = _formats(names, DOCUMENT_FORMATS)
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    shown: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with runtime() as rt:
        rt.billing.get_run(run_id)  # refuse an unknown run before drawing a progress bar
        invoices = [
            (row.id, row.display_number, row.account)
            for row in rt.read_side.fresh_invoices().search(run_id=run_id, status="closed")
        ]
        documents, store = _documents(rt)

        def render_one(invoice_id: UUID, number: str, account: str, recorded: str) -> None:
            try:
                (document,) = documents.render(invoice_id, [recorded])
            except DocumentNotAvailable as refusal:
                skipped.append({"number": number, "format": recorded, "reason": str(refusal)})
                return
            path = store.path(document.location)
            if out is not None:
                path = _copy(path, out / _file_name(number, document.format))
            shown.append(document_json(invoice_id, number, account, document, path))

        def render_all(update: Any) -> None:
            for done, (invoice_id, number, account) in enumerate(invoices, start=1):
                for recorded in wanted_formats:
                    render_one(invoice_id, number, account, recorded)
                update(done, len(invoices))

        if json_out:
            render_all(lambda done, total: None)
        else:
            what = " and ".join(wanted_formats)
            with progress_bar(f"run {run_id}: generating {what}") as update:
                render_all(update)
    for row in skipped:  # on stderr: stdout (and --json) lists the documents
        output.errors.print(f"[yellow]not available:[/yellow] {row['reason']}", soft_wrap=True)
    if json_out:
        output.print_json(shown)
        return
    table = Table(title=f"Documents of run {run_id}")
    for column in ("invoice", "account", "format", "path"):
        table.add_column(column, overflow="fold")
    for row in shown:
        table.add_row(row["number"], row["account"], row["format"], row["path"])
    output.console.print(table)
    output.console.print(
        f"{len(invoices)} invoices, {len(shown)} documents"
        + (f", {len(skipped)} not available" if skipped else "")
    )


@refusals
def invoice_documents_command(
    invoice: Annotated[
        str, typer.Argument(help="Invoice id (uuid) or number (42 or INV-00000042).")
    ],
    formats: FormatOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Also copy each document into this folder (INV-00000042.ubl.xml, ...)."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Print the path of each of an invoice's documents, rendering those never rendered.

    Default: every format the invoice can have (pdf, ubl, cii, facturx). A format
    asked for that it cannot have is refused with the reason (exit 2): CII and
    Factur-X are EN 16931 documents, so not for a currency of 3 decimals (KWD, BHD).

    Example: billrun invoice documents INV-00000042 --format ubl --format facturx
    """
    wanted = _formats(formats, ("pdf", "xml", "cii", "facturx"))
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    with runtime() as rt:
        invoice_id = resolve_invoice_id(rt, invoice)
        documents, store = _documents(rt)
        rendered = []
        for recorded in wanted:
            try:
                rendered += documents.render(invoice_id, [recorded])
            except DocumentNotAvailable as refusal:
                if formats:  # asked for by name: refused
                    raise
                output.errors.print(f"[yellow]not available:[/yellow] {refusal}", soft_wrap=True)
        found = rt.billing.get_invoice(invoice_id)
        number = found.display_number or ""
        shown = []
        for document in rendered:
            path = store.path(document.location)
            if out is not None:
                path = _copy(path, out / _file_name(number, document.format))
            shown.append(document_json(invoice_id, number, found.account_id, document, path))
    if json_out:
        output.print_json(shown)
        return
    for row in shown:
        output.console.print(f"{row['format']:8} {row['path']}", soft_wrap=True, highlight=False)


@refusals
def invoice_pdf(
    invoice: Annotated[
        str, typer.Argument(help="Invoice id (uuid) or number (42 or INV-00000042).")
    ],
    out: Annotated[Path | None, typer.Option(help="Also copy the PDF to this file.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Print the path of an invoice's PDF, rendering it first if it never was."""
    with runtime() as rt:
        invoice_id = resolve_invoice_id(rt, invoice)
        documents, store = _documents(rt)
        (document,) = documents.render(invoice_id, ["pdf"])
        found = rt.billing.get_invoice(invoice_id)
        path = store.path(document.location)
        if out is not None:
            path = _copy(path, out)
    if json_out:
        output.print_json(
            document_json(invoice_id, found.display_number or "", found.account_id, document, path)
        )
        return
    output.console.print(str(path), soft_wrap=True, highlight=False)
