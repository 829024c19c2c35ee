"""The demo's e-invoices pass the official validators: every UBL (XSD, EN 16931,
Peppol BIS 3.0 for Peppol buyers), every CII (Factur-X EN 16931) and every
Factur-X PDF (read back by the `factur-x` package, PDF/A-3b declared), and the
demo ends with one document of each kind on disk, named."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import BILLRUN, Cli, user_environment

validation = pytest.importorskip("infrastructure.einvoice.validation")
facturx = pytest.importorskip("facturx")
pypdf = pytest.importorskip("pypdf")


@pytest.fixture
def demo_cli(tmp_path: Path, database_url: str) -> Cli:
    """`billrun` under the built-in demo seller (Belgian, on Peppol)."""
    assert BILLRUN.exists()
    env = user_environment(tmp_path / "home")
    env["BILLRUN_DATABASE_URL"] = database_url
    return Cli(cwd=tmp_path, env=env)


def test_the_demos_documents_pass_the_official_validators(demo_cli: Cli, tmp_path: Path) -> None:
    try:
        artefacts = validation.artefacts_folder()
    except validation.ArtefactsMissing as missing:
        pytest.skip(str(missing))
    demo = demo_cli.ok("demo", "--accounts", "12")

    named = re.findall(
        r"^ +(UBL 2\.1|CII D16B|Factur-X|PDF) +(/\S+)$",
        demo.stdout.split("E-invoices of", 1)[1],
        re.MULTILINE,
    )
    assert {kind for kind, _ in named} == {"PDF", "UBL 2.1", "CII D16B", "Factur-X"}
    for _kind, path in named:
        assert Path(path).is_file(), path

    documents = demo_cli.json(
        "run", "documents", "demo-001", "-f", "ubl", "-f", "cii", "-f", "facturx", "--json"
    )
    by_format: dict[str, list[Path]] = {}
    for document in documents:
        by_format.setdefault(document["format"], []).append(Path(document["path"]))
    assert len(by_format["xml"]) == 12
    peppol = 0
    for path in by_format["xml"]:
        xml = path.read_bytes()
        peppol += b"poacc:billing:3.0" in xml
        findings = validation.findings_ubl(xml, artefacts)
        assert validation.fatal(findings) == [], f"{path}\n" + "\n".join(map(str, findings))
    assert peppol > 0, "some demo buyers are on Peppol"
    for path in by_format["cii"]:
        findings = validation.findings_cii(path.read_bytes())
        assert validation.fatal(findings) == [], f"{path}\n" + "\n".join(map(str, findings))
    for path in by_format["facturx"]:
        pdf = path.read_bytes()
        name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
        assert name == "factur-x.xml" and b"CrossIndustryInvoice" in xml
        catalog = pypdf.PdfReader(io.BytesIO(pdf)).trailer["/Root"]
        xmp = catalog["/Metadata"].get_object().get_data()
        assert b'pdfaid:part="3"' in xmp and b'pdfaid:conformance="B"' in xmp
        assert b"<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
