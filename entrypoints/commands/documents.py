"""`billrun run documents` and `billrun invoice pdf`: invoice PDFs and UBL XML.

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

from application.invoicing.documents import DOCUMENT_FORMATS, InvoiceDocuments, invoice_documents
from domain.invoicing.documents import RenderedDocument
from entrypoints import output
from entrypoints.common import JsonFlag, UsageError, progress_bar, refusals, runtime
from entrypoints.presenters import resolve_invoice_id
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


def _document_json(
    invoice_id: UUID, number: str, account: str, document: RenderedDocument, path: Path
) -> dict[str, Any]:
    return {
        "invoice_id": str(invoice_id),
        "number": number,
        "account": account,
        "format": document.format,
        "sha256": document.sha256,
        "size": document.size,
        "location": document.location,
        "path": str(path),
    }


@refusals
def run_documents(
    run_id: str,
    pdf: Annotated[bool, typer.Option("--pdf", help="Generate PDFs.")] = False,
    xml: Annotated[bool, typer.Option("--xml", help="Generate UBL 2.1 XML.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Also copy each document here, named INV-00000042.pdf / .xml."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Generate the documents of every closed invoice of a run (neither flag: both).

    Documents already generated are not rendered again; every path is printed.
    """
    formats = [f for f, wanted in (("pdf", pdf), ("xml", xml)) if wanted] or list(DOCUMENT_FORMATS)
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    shown: list[dict[str, Any]] = []
    with runtime() as rt:
        rt.billing.get_run(run_id)  # refuse an unknown run before drawing a progress bar
        invoices = [
            (row.id, row.display_number, row.account)
            for row in rt.read_side.fresh_invoices().search(run_id=run_id, status="closed")
        ]
        documents, store = _documents(rt)

        def render_all(update: Any) -> None:
            for done, (invoice_id, number, account) in enumerate(invoices, start=1):
                for document in documents.render(invoice_id, formats):
                    path = store.path(document.location)
                    if out is not None:
                        path = _copy(path, out / f"{number}.{document.format}")
                    shown.append(_document_json(invoice_id, number, account, document, path))
                update(done, len(invoices))

        if json_out:
            render_all(lambda done, total: None)
        else:
            with progress_bar(f"run {run_id}: generating {' and '.join(formats)}") as update:
                render_all(update)
    if json_out:
        output.print_json(shown)
        return
    table = Table(title=f"Documents of run {run_id}")
    for column in ("invoice", "account", "format", "path"):
        table.add_column(column, overflow="fold")
    for row in shown:
        table.add_row(row["number"], row["account"], row["format"], row["path"])
    output.console.print(table)
    output.console.print(f"{len(invoices)} invoices, {len(shown)} documents")


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
            _document_json(invoice_id, found.display_number or "", found.account_id, document, path)
        )
        return
    output.console.print(str(path), soft_wrap=True, highlight=False)
