"""Rendering benchmark: invoice PDFs per second across worker processes, plain and
Factur-X (PDF/A-3b), against WeasyPrint rendering a minimal page in the same run.

    python bench/render.py                   # 400 invoices per round, 2 processes, 3 rounds
    python bench/render.py --pdfs 200 --json
    python bench/render.py --variants        # what each renderer choice buys, one core

Each PDF is a one-page invoice with 8 lines, rendered by `InvoiceRenderer`, the
renderer `InvoiceDocuments.render` uses: jinja2 template, WeasyPrint layout, PDF
with the shipped font subset per PDF. The Factur-X variant is the same invoice
as PDF/A-3b with its CII attached (`render_facturx`). Every worker process
builds its renderer and renders one of each before timing starts (the steady
state a render consumer runs in). Timed: the wall-clock time from handing out
the invoices to the last PDF coming back.

The ceiling is WeasyPrint itself: a minimal one-page document (a heading and a
sentence in the same font, regular and bold) parsed, laid out and written as a
PDF by the same pool, with the same font configuration. `ratio` = invoices/s ÷
minimal pages/s: how close the invoice comes to the cheapest page WeasyPrint
can make. The three alternate every 40 invoices so a burst of load from other
processes hits them alike; the totals are summed over rounds. No database is
involved: the invoices are built in memory. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import multiprocessing
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from application.invoicing.documents import build_invoice_document
from application.shared.ports import InvoiceDocument, Seller
from bench.common import load_average, log, machine_info, stopwatch
from domain.billing.account import Account
from domain.billing.lines import InvoiceLine
from domain.invoicing.invoice import Invoice
from domain.shared.ids import package_line_uuid
from infrastructure.collector import collector_paused
from infrastructure.rendering.renderer import InvoiceRenderer, refusing_fetcher

AT = datetime(2026, 2, 1, tzinfo=UTC)
ITEMS = [
    ("Private office, 6 desks", "450.00"),
    ("Dedicated desk", "320.00"),
    ("Meeting room bundle (10 h)", "180.00"),
    ("Virtual office and mail handling", "210.00"),
    ("Storage locker", "95.50"),
    ("Annual community membership", "1200.00"),
    ("Parking space, level -1", "85.00"),
    ("High-speed fibre, 1 Gbit/s", "59.90"),
]


def sample_document(index: int, lines: int = 8) -> InvoiceDocument:
    """A closed invoice of `lines` lines for account BENCH-<index>, as a view model."""
    account_id = f"BENCH-{index:06d}"
    account = Account.open(
        account_id, f"Customer {index} Holdings", "EUR", f"ap{index}@example.test", "monthly", AT
    )
    invoice = Invoice.open("bench-2026-01", account_id, "EUR", date(2026, 1, 31), AT)
    for i in range(lines):
        description, amount = ITEMS[i % len(ITEMS)]
        invoice.add_line(
            InvoiceLine(
                line_id=package_line_uuid(account_id, f"p{i}", date(2026, 1, 1)),
                account_id=account_id,
                run_id="bench-2026-01",
                source=f"package:p{i}",
                description=description,
                service_period_start=date(2026, 1, 1),
                service_period_end=date(2026, 1, 31),
                quantity=Decimal(1),
                unit_amount=Decimal(amount),
                amount=Decimal(amount),
                currency="EUR",
                posting_date=date(2026, 1, 31),
                rule="recurring:monthly:advance",
            ),
            AT,
        )
    invoice.close(index + 1, AT)
    return build_invoice_document(invoice, account, Seller())


# Worker processes ---------------------------------------------------------------

SLICE = 40
"""Invoices rendered as each kind (PDF, Factur-X, minimal page) before switching."""

# Each worker's renderer, built once by the pool's initializer.
_worker: dict[str, Any] = {}


def _init_worker(lines: int) -> None:
    renderer = InvoiceRenderer()
    renderer.render_pdf(sample_document(0, lines))  # warm up: fonts, templates, stylesheet
    renderer.render_facturx(sample_document(0, lines))
    from weasyprint.text.fonts import FontConfiguration

    _worker.update(
        renderer=renderer,
        lines=lines,
        options=renderer.pdf_options,
        font_config=FontConfiguration(),
        fetcher=refusing_fetcher(),
    )
    _minimal(0)


def _pdf(index: int) -> int:
    pdf: bytes = _worker["renderer"].render_pdf(sample_document(index, _worker["lines"]))
    if not pdf.startswith(b"%PDF-"):
        raise RuntimeError(f"invoice {index}: not a PDF")
    return len(pdf)


def _facturx(index: int) -> int:
    pdf: bytes = _worker["renderer"].render_facturx(sample_document(index, _worker["lines"]))
    if not pdf.startswith(b"%PDF-"):
        raise RuntimeError(f"invoice {index}: not a PDF")
    return len(pdf)


MINIMAL_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Minimal</title>
<style>
@font-face {{ font-family: "Billrun Sans"; font-weight: normal;
             src: url("billrun-font:BillrunSans-Regular.ttf") }}
@font-face {{ font-family: "Billrun Sans"; font-weight: bold;
             src: url("billrun-font:BillrunSans-Bold.ttf") }}
@page {{ size: A4; margin: 16mm }}
html {{ font-family: "Billrun Sans"; font-size: 8.5pt }}
h1 {{ font-size: 22pt; font-weight: bold }}
</style></head>
<body><h1>INVOICE</h1><p>Customer {index} Holdings: EUR 2,600.40 due 2 March 2026.</p></body>
</html>"""


def _minimal(index: int) -> int:
    """WeasyPrint's cheapest page: a heading and a sentence in the invoice's fonts,
    with a font configuration kept per process as the renderer keeps its own."""
    from weasyprint import HTML

    html = HTML(string=MINIMAL_PAGE.format(index=index), url_fetcher=_worker["fetcher"])
    options = _worker["options"]
    with collector_paused():  # as in render_pdf
        document = html.render(font_config=_worker["font_config"], **options)
        pdf: bytes = document.write_pdf(**options)
    if len(document.pages) != 1 or not pdf.startswith(b"%PDF-"):
        raise RuntimeError("the minimal document must be a one-page PDF")
    return len(pdf)


KINDS = {"pdf": _pdf, "facturx": _facturx, "minimal": _minimal}

# Measuring ----------------------------------------------------------------------


def stages(lines: int, count: int = 20) -> dict[str, float]:
    """Mean CPU milliseconds of each stage of one PDF, in this process, one core."""
    renderer = InvoiceRenderer()
    renderer.render_pdf(sample_document(0, lines))
    documents = [sample_document(i, lines) for i in range(1, count + 1)]
    started = time.process_time()
    for document in documents:
        renderer.render_html(document)
    template = time.process_time() - started
    started = time.process_time()
    laid_out = [renderer.layout(document) for document in documents]
    layout = time.process_time() - started - template  # layout() renders the template too
    started = time.process_time()
    for done in laid_out:
        with collector_paused():  # as in render_pdf
            done.write_pdf(**renderer.pdf_options)
    write = time.process_time() - started
    return {
        "template_ms": round(template / count * 1000, 2),
        "layout_ms": round(layout / count * 1000, 2),
        "write_pdf_ms": round(write / count * 1000, 2),
    }


def variants(lines: int, rounds: int = 6, per_round: int = 3) -> dict[str, dict[str, float]]:
    """One-core CPU milliseconds per PDF for the choices the renderer makes, each
    switched off in turn (interleaved rounds, so load from other processes hits
    every variant alike). `full_fonts` and `hinting` are the PDF options tried."""
    import statistics

    import weasyprint.pdf.fonts
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    from infrastructure.rendering.renderer import PDF_OPTIONS, TEMPLATES

    renderer = InvoiceRenderer()
    document = sample_document(1, lines)
    hb_subset = weasyprint.pdf.fonts.harfbuzz_subset

    def naive(options: dict[str, Any], pause_gc: bool = False) -> bytes:
        # A new font configuration and the stylesheet parsed inside each document.
        html = HTML(
            string=renderer.render_html(document, standalone=True),
            base_url=str(TEMPLATES),  # the stylesheet's fonts are relative to it
            url_fetcher=refusing_fetcher(),
        )
        with collector_paused() if pause_gc else contextlib.nullcontext():
            pdf: bytes = html.render(font_config=FontConfiguration(), **options).write_pdf(
                **options
            )
        return pdf

    def with_options(**changes: Any) -> Any:
        tuned = InvoiceRenderer(pdf_options={**PDF_OPTIONS, **changes})
        return lambda: tuned.render_pdf(document)

    def fonttools(run: Any) -> Any:
        def wrapped() -> bytes:
            weasyprint.pdf.fonts.harfbuzz_subset = None
            try:
                return bytes(run())
            finally:
                weasyprint.pdf.fonts.harfbuzz_subset = hb_subset

        return wrapped

    def chosen() -> bytes:
        return renderer.render_pdf(document)

    tried: dict[str, Any] = {
        "chosen (harfbuzz subset, shared fonts and stylesheet, GC paused)": chosen,
        "GC not paused": lambda: _gc_on(renderer, document),
        "stylesheet and fonts per document": lambda: naive(PDF_OPTIONS, pause_gc=True),
        "fontTools subsetting (no libharfbuzz-subset)": fonttools(chosen),
        "full_fonts=True (no subsetting)": with_options(full_fonts=True),
        "hinting=True": with_options(hinting=True),
    }
    if hb_subset is None:  # nothing to compare against: this machine has fontTools only
        del tried["fontTools subsetting (no libharfbuzz-subset)"]
    samples: dict[str, list[float]] = {name: [] for name in tried}
    sizes: dict[str, int] = {}
    for run in tried.values():
        run()  # warm up
    for _ in range(rounds):
        for name, run in tried.items():
            started = time.process_time()
            for _ in range(per_round):
                sizes[name] = len(run())
            samples[name].append((time.process_time() - started) / per_round * 1000)
    return {
        name: {
            "median_ms": round(statistics.median(values), 1),
            "min_ms": round(min(values), 1),
            "pdf_bytes": sizes[name],
        }
        for name, values in samples.items()
    }


def _gc_on(renderer: InvoiceRenderer, document: InvoiceDocument) -> bytes:
    """`render_pdf` without `collector_paused`."""
    pdf: bytes = renderer._layout(document).write_pdf(**renderer.pdf_options)
    return pdf


def use_subsetter(name: str) -> None:
    """`fonttools`: subset fonts as a fresh machine does (no libharfbuzz-subset),
    even where the library is installed; `installed`: whatever this machine has.
    Set before the pool forks, so every worker inherits it."""
    import weasyprint.pdf.fonts

    if name == "fonttools":
        weasyprint.pdf.fonts.harfbuzz_subset = None


def font_subsetter() -> str:
    import weasyprint.pdf.fonts

    if weasyprint.pdf.fonts.harfbuzz_subset is None:
        return "fonttools"
    return "harfbuzz (libharfbuzz-subset)"


def bench(
    pdfs: int, processes: int, rounds: int, lines: int, profile: Path | None
) -> dict[str, Any]:
    import weasyprint

    load_before = load_average()
    per_round: list[dict[str, float]] = []
    sizes: dict[str, list[int]] = {}
    seconds = dict.fromkeys(KINDS, 0.0)
    context = multiprocessing.get_context("fork")
    with context.Pool(processes, initializer=_init_worker, initargs=(lines,)) as pool:
        pool.map(_pdf, range(processes), chunksize=1)  # every worker started and warm
        for round_no in range(1, rounds + 1):
            start = round_no * pdfs
            this_round = dict.fromkeys(KINDS, 0.0)
            # The kinds alternate in slices of the round, so a burst of load from
            # other processes lands on every side of the ratios alike.
            for first in range(start, start + pdfs, SLICE):
                indexes = range(first, min(first + SLICE, start + pdfs))
                for kind, work in KINDS.items():
                    with stopwatch() as elapsed:
                        sizes[kind] = pool.map(work, indexes, chunksize=4)
                    this_round[kind] += elapsed[0]
            for kind in KINDS:
                seconds[kind] += this_round[kind]
            per_round.append({f"{kind}_per_s": round(pdfs / this_round[kind], 1) for kind in KINDS})
            log(
                f"round {round_no}: {per_round[-1]['pdf_per_s']} PDFs/s, "
                f"{per_round[-1]['facturx_per_s']} Factur-X/s, "
                f"minimal page {per_round[-1]['minimal_per_s']}/s"
            )
    profiler = cProfile.Profile() if profile else None
    if profiler:
        renderer = InvoiceRenderer()
        renderer.render_pdf(sample_document(0, lines))
        profiler.enable()
        for i in range(1, 51):
            renderer.render_pdf(sample_document(i, lines))
        profiler.disable()
        profiler.dump_stats(str(profile))
    total = pdfs * rounds
    rate = {kind: total / seconds[kind] for kind in KINDS}
    one_core = stages(lines)
    per_pdf_ms = sum(one_core.values())
    return {
        "pdfs": total,
        "seconds": round(seconds["pdf"], 3),
        "pdfs_per_s": round(rate["pdf"], 1),
        "facturx_per_s": round(rate["facturx"], 1),
        "ceiling_per_s": round(rate["minimal"], 1),
        "ratio": round(rate["pdf"] / rate["minimal"], 3),
        "facturx_ratio": round(rate["facturx"] / rate["minimal"], 3),
        "ceiling": "WeasyPrint: a minimal one-page document in the same font, as a PDF",
        "processes": processes,
        "rounds": per_round,
        "lines_per_invoice": lines,
        "pdf_bytes": round(sum(sizes["pdf"]) / len(sizes["pdf"])),
        "facturx_bytes": round(sum(sizes["facturx"]) / len(sizes["facturx"])),
        "stages_one_core": one_core,
        # What the processes would reach with a core each and nothing else
        # running: the context for figures taken on a shared machine.
        "cpu_bound_estimate_per_s": round(processes * 1000 / per_pdf_ms, 1),
        "font_subsetter": font_subsetter(),
        "pdf_options": InvoiceRenderer().pdf_options,
        "weasyprint": weasyprint.__version__,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "machine": machine_info(),
    }


def human(r: dict[str, Any]) -> str:
    s = r["stages_one_core"]
    return "\n".join(
        [
            f"{r['pdfs']:,} invoice PDFs ({r['lines_per_invoice']} lines, "
            f"{r['pdf_bytes']:,} bytes each) on {r['processes']} processes: "
            f"{r['pdfs_per_s']:,.1f} PDFs/s ({r['seconds']:.1f} s); "
            f"Factur-X PDF/A-3b ({r['facturx_bytes']:,} bytes): {r['facturx_per_s']:,.1f}/s",
            f"ceiling, WeasyPrint's minimal one-page PDF: {r['ceiling_per_s']:,.1f}/s; "
            f"ratio {r['ratio']:.2f} (Factur-X {r['facturx_ratio']:.2f})",
            f"one core, per PDF: template {s['template_ms']} ms, layout {s['layout_ms']} ms, "
            f"write_pdf {s['write_pdf_ms']} ms; fonts subset by {r['font_subsetter']}",
            f"CPU-bound estimate, a free core per process: {r['cpu_bound_estimate_per_s']}/s",
            f"load average {r['load_average_before']} before, {r['load_average_after']} after "
            f"({r['machine']['cores']} cores)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdfs", type=int, default=400, help="PDFs per round (default: 400)")
    parser.add_argument("--rounds", type=int, default=3, help="default: 3")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--lines", type=int, default=8, help="lines per invoice (default: 8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--subsetter",
        choices=("fonttools", "installed"),
        default="fonttools",
        help="fonttools (default): subset fonts as a fresh machine does, even where "
        "libharfbuzz-subset is installed; installed: whatever this machine has",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of 50 PDFs to this file")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="only compare the renderer's choices, one core (CPU ms per PDF)",
    )
    args = parser.parse_args(argv)
    if min(args.pdfs, args.rounds, args.processes, args.lines) < 1:
        parser.error("--pdfs, --rounds, --processes and --lines must be at least 1")
    use_subsetter(args.subsetter)
    if args.variants:
        compared = variants(args.lines, rounds=args.rounds * 2)
        if args.json:
            print(json.dumps(compared, indent=2))
        else:
            for name, figures in compared.items():
                print(
                    f"{figures['median_ms']:7.1f} ms (min {figures['min_ms']:.1f}) "
                    f"{figures['pdf_bytes']:>9,} B  {name}"
                )
        return 0
    result = bench(args.pdfs, args.processes, args.rounds, args.lines, args.profile)
    print(json.dumps(result, indent=2) if args.json else human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
