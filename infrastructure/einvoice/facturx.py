"""Factur-X / ZUGFeRD (EN 16931 profile): a PDF/A-3b invoice carrying its CII.

WeasyPrint writes the PDF/A-3b (`pdf_variant`), embeds the CII as
`factur-x.xml` with the relationship `Data` (listed in the catalog's /AF, as
PDF/A-3 requires) and adds the Factur-X XMP properties with their PDF/A
extension schema (without which a PDF/A-3 validator refuses the `fx:`
properties). `InvoiceRenderer.render_facturx` calls this with its own laid-out
document.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

FILENAME = "factur-x.xml"
PDF_VARIANT = "pdf/a-3b"
CONFORMANCE_LEVEL = "EN 16931"

_XMP = """<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:fx="urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#">
<fx:DocumentType>INVOICE</fx:DocumentType>
<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>
<fx:Version>1.0</fx:Version>
<fx:ConformanceLevel>{level}</fx:ConformanceLevel>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"
 xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#"
 xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">
<pdfaExtension:schemas><rdf:Bag><rdf:li rdf:parseType="Resource">
<pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>
<pdfaSchema:namespaceURI>urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#</pdfaSchema:namespaceURI>
<pdfaSchema:prefix>fx</pdfaSchema:prefix>
<pdfaSchema:property><rdf:Seq>{properties}</rdf:Seq></pdfaSchema:property>
</rdf:li></rdf:Bag></pdfaExtension:schemas>
</rdf:Description>
</rdf:RDF>"""

_PROPERTY = """<rdf:li rdf:parseType="Resource">
<pdfaProperty:name>{name}</pdfaProperty:name>
<pdfaProperty:valueType>Text</pdfaProperty:valueType>
<pdfaProperty:category>external</pdfaProperty:category>
<pdfaProperty:description>{description}</pdfaProperty:description>
</rdf:li>"""

_PROPERTIES = (
    ("DocumentFileName", "The name of the embedded XML invoice file"),
    ("DocumentType", "INVOICE"),
    ("Version", "The version of the Factur-X XML schema"),
    ("ConformanceLevel", "The conformance level of the embedded Factur-X data"),
)


def xmp_metadata() -> bytes:
    """The Factur-X XMP block (EN 16931 profile) with its PDF/A extension schema."""
    properties = "".join(_PROPERTY.format(name=n, description=d) for n, d in _PROPERTIES)
    return _XMP.format(level=CONFORMANCE_LEVEL, properties=properties).encode("utf-8")


def write_facturx(layout: Any, cii: bytes, pdf_options: dict[str, Any], issued: date) -> bytes:
    """The PDF/A-3b of WeasyPrint's laid-out `layout` with `cii` attached, dated
    `issued` (the invoice's issue date: the same invoice gives the same bytes)."""
    from weasyprint import Attachment

    # WeasyPrint dates an attachment "now" unless told: the issue date, at midnight
    # UTC, keeps the PDF deterministic like the plain one.
    stamp = datetime.combine(issued, time(), UTC)
    layout.metadata.xmp_metadata.append(xmp_metadata())
    attachment = Attachment(
        string=cii.decode("utf-8"),
        name=FILENAME,
        description="Factur-X invoice (EN 16931)",
        relationship="Data",
        created=stamp,
        modified=stamp,
    )
    options = {**pdf_options, "pdf_variant": PDF_VARIANT}
    pdf: bytes = layout.write_pdf(attachments=[attachment], **options)
    return pdf
