"""Invoice documents with jinja2 and WeasyPrint, and the text of invoice emails.

`InvoiceRenderer` satisfies the application's `DocumentRenderer` port and
`EmailTemplates` its `MessageTemplates` port, structurally: this module knows
nothing of the application, and takes the invoice view model as whatever
object the templates can read (`doc.number`, `doc.lines`, ...).

HTML and XML are autoescaped (an account named `<b>&Co` prints as such and
cannot inject markup). Email text is not escaped (it is plain text), and a bill
group's own template runs in jinja2's sandbox, since it comes from an import
file rather than from this repository.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from domain.shared.money import plain as plain_notation
from infrastructure.collector import collector_paused
from infrastructure.rendering.templates import BudgetedSandbox, capped_filter, render_within_budget

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
FONTS = Path(__file__).resolve().parent / "fonts"

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip

PDF_OPTIONS: dict[str, Any] = {
    # Subset fonts (the default; `full_fonts` embeds the shipped faces whole:
    # 59 KB per invoice instead of 19 KB, for 15 ms less of fontTools work) and
    # drop TrueType hinting instructions, which PDF viewers do not use for text
    # at print resolution and which were 40 % of the PDF's bytes.
    "full_fonts": False,
    "hinting": False,
    # No images in the template: nothing to re-encode.
    "optimize_images": False,
    # Compressed streams (the default) keep a one-page invoice around 15 KB.
    "uncompressed_pdf": False,
}


def _without_fonttools_notice(record: logging.LogRecord) -> bool:
    return "instead of HarfBuzz-Subset" not in record.getMessage()


@functools.cache
def _fonttools_fallback() -> None:
    """Set up for fontTools subsetting fonts, and say so once per process (every
    renderer of a process, and every document it renders, shares the one cause)."""
    # fontTools stamps each font subset it writes with the current time
    # (`head.modified`) unless SOURCE_DATE_EPOCH is set: `billrun` sets it once
    # when the process starts (`entrypoints.cli.prepare_process`), not here, since
    # the environment is the whole process's. Say so when a process did not.
    if "SOURCE_DATE_EPOCH" not in os.environ:
        log.warning(
            "SOURCE_DATE_EPOCH is not set: fontTools stamps each PDF's fonts with the "
            "current time, so the same invoice renders to other bytes a second later"
        )
    # WeasyPrint repeats its own notice for every font of every PDF.
    logging.getLogger("weasyprint").addFilter(_without_fonttools_notice)
    log.warning(
        "libharfbuzz-subset is not installed: WeasyPrint falls back to fontTools "
        "to subset fonts, about 30 ms more per PDF "
        "(Debian/Ubuntu: apt-get install libharfbuzz-subset0)"
    )


class RefusedFetch(ValueError):
    """The invoice template asked for an external resource; invoices embed none
    but the fonts shipped with the package."""


FONT_SCHEME = "billrun-font:"
"""How the stylesheet names a shipped font (`url("billrun-font:BillrunSans-Bold.ttf")`),
wherever the templates are: the fonts ship in the package, not beside them."""


def refusing_fetcher(fonts: Path = FONTS) -> Any:
    """A WeasyPrint URL fetcher that reads the shipped fonts and nothing else, and
    stops the rendering if asked for anything else.

    A rendered invoice must depend on nothing but its data and this package: no
    network, no other files. The stylesheet's `@font-face` rules name the font
    files in `fonts` (`FONT_SCHEME`); any other request is a template bug, and
    failing the rendering beats an invoice silently missing part of itself.
    """
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    shipped = {FONT_SCHEME + path.name: path for path in fonts.glob("*.ttf")}

    class RefusingFetcher(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            font = shipped.get(url)
            if font is None:
                raise RefusedFetch(f"invoice templates may not load {url!r}")
            return URLFetcherResponse(url, body=font.read_bytes())

    return RefusingFetcher(fail_on_errors=True)


# Filters -----------------------------------------------------------------------


def money(amount: Decimal) -> str:
    """`1,234.50`: amounts arrive at their currency's minor unit, and Decimal
    formatting keeps that exponent (JPY `48,000`, KWD `1.250`)."""
    return f"{amount:,f}"


def plain(value: Decimal) -> str:
    """A decimal in positional notation, never `1E+2` (XML schemas refuse exponents)."""
    return plain_notation(value)


def negated(value: Decimal) -> Decimal:
    """`-value`, and zero never negative (a credit note's 0.00 tax is not -0.00)."""
    result = -value
    return result.copy_abs() if result.is_zero() else result


def quantity(value: Decimal) -> str:
    """`1`, `2.5`, `12,345.75`: no trailing zeros, no exponent, thousands grouped."""
    return format(value.normalize(), ",f")


def percent(value: Decimal) -> str:
    """`21%`, `5.5%`: no trailing zeros."""
    return f"{format(value.normalize(), 'f')}%"


def long_date(value: date) -> str:
    """`31 January 2026`, in English whatever the process locale."""
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def short_date(value: date) -> str:
    return f"{value.day} {MONTHS[value.month - 1][:3]} {value.year}"


FILTERS: dict[str, Callable[..., Any]] = {
    "money": money,
    "plain": plain,
    "negated": negated,
    "quantity": quantity,
    "percent": percent,
    "long_date": long_date,
    "short_date": short_date,
}


def document_environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        # `.html.j2` and `.xml.j2` are escaped for their markup; nothing else is loaded.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "xml.j2"), default_for_string=True, default=True
        ),
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )
    environment.filters.update(FILTERS)
    return environment


# Documents ---------------------------------------------------------------------


class InvoiceRenderer:
    """Renders the invoice view model to HTML, PDF (WeasyPrint), UBL 2.1, CII and Factur-X.

    One renderer per process, reused: it keeps the compiled templates, the
    stylesheet parsed once (`invoice.css`) and one WeasyPrint
    `FontConfiguration`, whose Pango font map then loads each font once
    instead of once per invoice. Together these save about a fifth of a PDF's
    time. WeasyPrint is imported on first use, so commands that never render
    do not pay for importing it.
    """

    def __init__(
        self, templates: Path = TEMPLATES, pdf_options: Mapping[str, Any] | None = None
    ) -> None:
        self.environment = document_environment(templates)
        self.pdf_options = dict(PDF_OPTIONS if pdf_options is None else pdf_options)
        self._html = self.environment.get_template("invoice.html.j2")
        self._css_path = templates / "invoice.css"
        self._base_url = str(templates)
        self._weasy: _Weasy | None = None
        # WeasyPrint lays out through Pango and fontconfig, which are not safe to
        # share between threads: the worker's consumers render from a thread pool,
        # and two renderings at once corrupted GLib's lists ("corrupted double-linked
        # list detected"). One rendering at a time per renderer; the work holds the
        # GIL anyway, so nothing is lost (processes, not threads, give parallelism).
        self._lock = threading.Lock()

    def render_html(self, document: object, standalone: bool = False) -> str:
        """The invoice as HTML; `standalone` inlines the stylesheet (for a browser)."""
        css = self._css_path.read_text(encoding="utf-8") if standalone else None
        return self._html.render(doc=document, inline_css=css)

    def render_xml(self, document: object) -> bytes:
        """A UBL 2.1 Invoice, or a CreditNote for a document that is a credit note:
        EN 16931, Peppol BIS Billing 3.0 when the seller and the buyer are on Peppol
        (`infrastructure.einvoice.ubl`)."""
        from infrastructure.einvoice.ubl import build_ubl

        return build_ubl(document)

    def render_cii(self, document: object) -> bytes:
        """UN/CEFACT CII D16B, EN 16931 (refused for 3-decimal currencies)."""
        from infrastructure.einvoice.cii import build_cii

        return build_cii(document)

    def render_facturx(self, document: object) -> bytes:
        """The PDF as PDF/A-3b, its CII attached as `factur-x.xml` (Factur-X EN 16931)."""
        from infrastructure.einvoice.facturx import write_facturx

        cii = self.render_cii(document)
        with self._lock, collector_paused():
            issued = document.issue_date  # type: ignore[attr-defined]
            return write_facturx(self._layout(document), cii, self.pdf_options, issued)

    def layout(self, document: object) -> Any:
        """WeasyPrint's laid-out document (pages and boxes), before any PDF is written."""
        with self._lock, collector_paused():
            return self._layout(document)

    def render_pdf(self, document: object) -> bytes:
        with self._lock, collector_paused():
            pdf: bytes = self._layout(document).write_pdf(**self.pdf_options)
        return pdf

    def _layout(self, document: object) -> Any:
        from weasyprint import HTML

        weasy = self._weasyprint()
        html = HTML(
            string=self.render_html(document),
            base_url=self._base_url,
            url_fetcher=weasy.fetcher,
        )
        return html.render(
            font_config=weasy.font_config, stylesheets=[weasy.stylesheet], **self.pdf_options
        )

    def _weasyprint(self) -> _Weasy:
        if self._weasy is None:
            from weasyprint import CSS
            from weasyprint.text.ffi import harfbuzz_subset
            from weasyprint.text.fonts import FontConfiguration

            if harfbuzz_subset is None:
                _fonttools_fallback()
            font_config = FontConfiguration()
            fetcher = refusing_fetcher()
            stylesheet = CSS(
                filename=str(self._css_path), font_config=font_config, url_fetcher=fetcher
            )
            self._weasy = _Weasy(font_config, stylesheet, fetcher)
        return self._weasy


@dataclass(frozen=True)
class _Weasy:
    """What one renderer keeps of WeasyPrint between invoices."""

    font_config: Any
    stylesheet: Any
    fetcher: Any


# Email text --------------------------------------------------------------------


class EmailTemplates:
    """The subject and body of invoice emails: the built-in templates, or a bill
    group's own template text (rendered in jinja2's sandbox)."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.builtin = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=False,  # noqa: S701 - plain-text email, never HTML
            undefined=jinja2.StrictUndefined,
        )
        self.sandbox = BudgetedSandbox(autoescape=False, undefined=jinja2.StrictUndefined)
        self.builtin.filters.update(FILTERS)
        # billrun's own filters are trusted code; the widths they take are the sandbox's
        # to check, like the built-in ones'.
        self.sandbox.filters.update({name: capped_filter(f) for name, f in FILTERS.items()})
        self._compiled: dict[str, jinja2.Template] = {}

    def render_text(
        self, default_name: str, source: str | None, context: Mapping[str, object]
    ) -> str:
        what = default_name if source is None else f"the bill group's {default_name}"
        try:
            if source is None:
                return self.builtin.get_template(default_name).render(**context).strip()
            # A template from an import file: within a CPU-time and output budget.
            return render_within_budget(self._own(source), context).strip()
        except jinja2.TemplateError as error:
            raise ValueError(f"{what} cannot be rendered: {error}") from error

    def _own(self, source: str) -> jinja2.Template:
        # Bill groups are few and their templates rarely change: compile each once.
        if source not in self._compiled:
            if len(self._compiled) > 256:
                self._compiled.clear()
            self._compiled[source] = self.sandbox.from_string(source)
        return self._compiled[source]
