"""An invoice's documents: the PDF, UBL 2.1, CII and Factur-X, downloaded.

A document the run did not render (its settings said not to, or the render
consumer has not got to it yet) is rendered on first access and recorded on the
invoice (`InvoiceRendered`, as `billrun invoice documents` does), so the next
request serves the stored bytes. That write records the caller as its actor,
though the request is a read.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from fastapi import Request
from fastapi.responses import Response

from application.invoicing.documents import (
    ALL_FORMATS,
    FILE_SUFFIXES,
    DocumentNotAvailable,
    invoice_documents,
    recorded_format,
)
from domain.invoicing.documents import RenderedDocument
from entrypoints.http.books import Book
from entrypoints.http.routers.common import TenantBook, v1_router
from entrypoints.http.routers.invoices import InvoiceId, invoice_id_of
from entrypoints.http.tenancy import Authority, Principal
from entrypoints.representations_invoices import document_json

router = v1_router("invoices")


class Format(StrEnum):
    PDF = "pdf"
    UBL = "ubl"
    CII = "cii"
    FACTURX = "facturx"


MEDIA_TYPES = {
    "pdf": "application/pdf",
    "xml": "application/xml",
    "cii": "application/xml",
    "facturx": "application/pdf",
}
"""Each recorded format's media type (UBL is recorded as `xml`)."""

_DOWNLOAD = {
    200: {
        "description": "The document's bytes",
        "content": {"application/pdf": {}, "application/xml": {}},
    }
}


def _render(request: Request, book: Book, invoice_id: UUID, recorded: str) -> RenderedDocument:
    """The recorded document, rendered now (and recorded as the caller's) if never."""
    authority: Authority = request.app.state.authority
    principal: Principal = request.state.principal
    documents = invoice_documents(book.billing, book.runtime.settings)
    with authority.acting_as(principal):
        (document,) = documents.render(invoice_id, [recorded])
    return document


@router.get("/invoices/{invoice_id}/documents", summary="List an invoice's documents")
def list_documents(book: TenantBook, invoice_id: InvoiceId, request: Request) -> dict[str, Any]:
    """`billrun invoice documents --json`: every format the invoice can have,
    rendered now if never, each with its download URL; formats it cannot have
    (CII and Factur-X for a currency of 3 decimals) listed with the reason."""
    chosen = invoice_id_of(book, invoice_id)
    invoice = book.billing.get_invoice(chosen)
    items, not_available = [], []
    for name in ALL_FORMATS:
        try:
            document = _render(request, book, chosen, name)
        except DocumentNotAvailable as refusal:
            not_available.append({"format": _public(name), "reason": str(refusal)})
            continue
        shown = document_json(
            chosen, invoice.display_number or "", invoice.account_id, document, None
        )
        items.append({**shown, "url": f"/v1/invoices/{chosen}/documents/{_public(name)}"})
    return {"items": items, "not_available": not_available}


@router.get(
    "/invoices/{invoice_id}/documents/{document_format}",
    summary="Download an invoice's document",
    response_class=Response,
    responses=_DOWNLOAD,  # type: ignore[arg-type]
)
def get_document(
    book: TenantBook, invoice_id: InvoiceId, document_format: Format, request: Request
) -> Response:
    """The PDF, UBL 2.1 XML, CII XML or Factur-X PDF/A-3 (carrying its CII); 422
    when the invoice cannot have that format or is still open."""
    chosen = invoice_id_of(book, invoice_id)
    recorded = recorded_format(document_format.value)
    document = _render(request, book, chosen, recorded)
    content = invoice_documents(book.billing, book.runtime.settings).content(document)
    number = book.billing.get_invoice(chosen).display_number or str(chosen)
    return Response(
        content,
        media_type=MEDIA_TYPES[recorded],
        headers={
            "Content-Disposition": f'attachment; filename="{number}{FILE_SUFFIXES[recorded]}"',
            "ETag": f'"{document.sha256}"',
        },
    )


def _public(recorded: str) -> str:
    """The format's name in URLs (`ubl`; recorded as `xml`)."""
    return "ubl" if recorded == "xml" else recorded
