"""Rebuild the fonts the invoice template ships with, from Debian's font packages.

    python -m infrastructure.rendering.fonts.regenerate            # writes the .ttf files here
    python -m infrastructure.rendering.fonts.regenerate --check    # exit 1 if they differ

A developer tool, not run by `billrun`: the generated files are committed, so a
fresh machine renders invoices with no font installed and no fontTools work at
start-up. Sources (both openly licensed, licences beside the files):

- DejaVu Sans and DejaVu Sans Bold (Debian `fonts-dejavu-core`, installed on
  the project's machines), Bitstream Vera licence: the Latin subset the
  invoices print, and a Greek and Cyrillic subset loaded only for those letters.
- Droid Sans Fallback (Debian `fonts-droid-fallback`, Apache 2.0): Chinese,
  Japanese and Korean, for a customer name in those scripts. Not installed, so
  as not to change what fontconfig finds: `apt-get download fonts-droid-fallback`,
  `dpkg-deb -x` it into DIR, then pass
  `--droid DIR/usr/share/fonts-droid-fallback/truetype/DroidSansFallback.ttf`.

Why subsets: WeasyPrint subsets every font it embeds, once per PDF, and with
fontTools (no libharfbuzz-subset on a fresh machine) that costs in proportion
to the source font: about 170 ms per PDF for the two full DejaVu faces, a few
milliseconds for these. For the same reason the faces carry no OpenType layout
tables (GSUB, GPOS): fontTools decompiles them in full on every PDF even though
WeasyPrint then drops them (half the remaining font cost). Kerning comes from
the legacy `kern` table instead, which HarfBuzz applies when GPOS is absent:
the text sets as with the system's DejaVu Sans (compared page images differ
by a fraction of a pixel here and there). Hinting is dropped: PDF viewers do
not use it at print resolution.

The faces are renamed ("Billrun Sans"): the Vera licence asks modified fonts
to be, and fontconfig then never confuses them with the system's DejaVu. Each
script has a family of its own: see FACES.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

HERE = Path(__file__).resolve().parent
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
FAMILY = "Billrun Sans"

# What invoices print, in the faces every invoice embeds: Western, Central and
# Eastern European names and addresses (Romanian's comma-below letters too), the
# punctuation, currency and signs of amounts and references. Kept small on
# purpose: the cost of the per-PDF subset grows with the face's glyph count
# (about 390 glyphs here; 1,140 with the extended ranges below).
LATIN = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x017F),  # Latin-1 Supplement, Latin Extended-A
    (0x0218, 0x021B),  # S, s, T, t with comma below (Romanian)
    (0x2000, 0x2027),  # spaces, dashes, quotes, bullet, ellipsis
    (0x202F, 0x203A),  # narrow no-break space, per mille, angle quotes
    (0x20A0, 0x20CF),  # currency symbols (euro, rupee, rouble, lira, hryvnia, ...)
    (0x2116, 0x2116),  # numero sign
    (0x2122, 0x2122),  # trade mark sign
    (0x2212, 0x2212),  # minus sign
    (0xFFFD, 0xFFFD),  # replacement character
)
# The rest of Latin, in a face of its own that a PDF embeds only when it prints
# one of these letters: Latin Extended-B (African, Pinyin, ...), IPA and
# modifier letters, combining accents (a name stored decomposed), Latin Extended
# Additional (Vietnamese), the rest of the punctuation and letterlike signs.
LATIN_EXTENDED = (
    (0x0180, 0x02FF),  # Latin Extended-B, IPA, spacing modifier letters
    (0x0300, 0x036F),  # combining diacritical marks
    (0x1E00, 0x1EFF),  # Latin Extended Additional
    (0x2000, 0x206F),  # general punctuation
    (0x2100, 0x214F),  # letterlike symbols
)
GREEK_CYRILLIC = (
    (0x0370, 0x03FF),  # Greek and Coptic
    (0x0400, 0x052F),  # Cyrillic, Cyrillic Supplement
    (0x1F00, 0x1FFF),  # Greek Extended (polytonic)
)
CJK = (
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x3130, 0x318F),  # Hangul compatibility jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # halfwidth and fullwidth forms
)


@dataclass(frozen=True)
class Face:
    """One generated font file: which source, which characters, which style."""

    filename: str
    family: str
    source: str  # a file name under DEJAVU, or "droid"
    ranges: tuple[tuple[int, int], ...]
    style: str  # the name table's subfamily: "Regular" or "Bold"
    kerning: bool  # keep the `kern` table


# A family per script: WeasyPrint tells the fonts of a PDF apart by family, weight
# and size, so two files of one family would be embedded as one (the second
# script's letters drawn with the first file's glyphs). The template lists the
# families in turn (`font-family`), and Pango takes each letter from the first
# that has it.
LATIN_EXTENDED_FAMILY = f"{FAMILY} Latin Extended"
GREEK_CYRILLIC_FAMILY = f"{FAMILY} Greek Cyrillic"
CJK_FAMILY = f"{FAMILY} CJK"
FACES = (
    Face("BillrunSans-Regular.ttf", FAMILY, "DejaVuSans.ttf", LATIN, "Regular", True),
    Face("BillrunSans-Bold.ttf", FAMILY, "DejaVuSans-Bold.ttf", LATIN, "Bold", True),
    Face(
        "BillrunSansLatinExtended-Regular.ttf",
        LATIN_EXTENDED_FAMILY,
        "DejaVuSans.ttf",
        LATIN_EXTENDED,
        "Regular",
        True,
    ),
    Face(
        "BillrunSansLatinExtended-Bold.ttf",
        LATIN_EXTENDED_FAMILY,
        "DejaVuSans-Bold.ttf",
        LATIN_EXTENDED,
        "Bold",
        True,
    ),
    Face(
        "BillrunSansGreekCyrillic-Regular.ttf",
        GREEK_CYRILLIC_FAMILY,
        "DejaVuSans.ttf",
        GREEK_CYRILLIC,
        "Regular",
        True,
    ),
    Face(
        "BillrunSansGreekCyrillic-Bold.ttf",
        GREEK_CYRILLIC_FAMILY,
        "DejaVuSans-Bold.ttf",
        GREEK_CYRILLIC,
        "Bold",
        True,
    ),
    # CJK text is set without kerning; its layout tables (vertical forms) are not used.
    Face("BillrunSansCJK-Regular.ttf", CJK_FAMILY, "droid", CJK, "Regular", False),
)


def css_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    """The CSS `unicode-range` value of `ranges`, for invoice.css."""
    return ", ".join(f"U+{a:04X}" if a == b else f"U+{a:04X}-{b:04X}" for a, b in ranges)


def build(face: Face, source: Path) -> bytes:
    """The subset of `source` for `face`, as TrueType bytes (same input, same bytes)."""
    options = subset.Options()
    options.hinting = False
    options.desubroutinize = True
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]  # copyright, names, licence
    options.name_languages = [0x0409]
    # Kerning from the legacy `kern` table, not GPOS (see the module's doc).
    options.legacy_kern = face.kerning
    options.layout_features = []
    options.drop_tables += ["FFTM", "MATH", "vhea", "vmtx", "GSUB", "GPOS", "GDEF"]
    font = TTFont(source, recalcTimestamp=False)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[c for a, b in face.ranges for c in range(a, b + 1)])
    subsetter.subset(font)
    _rename(font, face)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _rename(font: TTFont, face: Face) -> None:
    postscript = face.filename.removesuffix(".ttf")
    full_name = f"{face.family} {face.style}"
    names = {1: face.family, 2: face.style, 3: f"{postscript};billrun", 4: full_name}
    names[6] = postscript
    table = font["name"]
    for name_id in (16, 17, 18, 21, 22):  # typographic names of the source, if any
        table.removeNames(nameID=name_id)
    for name_id, text in names.items():
        table.setName(text, name_id, 3, 1, 0x0409)
        table.setName(text, name_id, 1, 0, 0)


def sources(droid: Path | None) -> dict[str, Path]:
    found = {face.source: DEJAVU / face.source for face in FACES if face.source != "droid"}
    if droid is not None:
        found["droid"] = droid
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--droid", type=Path, help="DroidSansFallback.ttf (see above)")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    # fontTools stamps `head.modified` with the time unless told otherwise.
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    paths = sources(args.droid)
    differ = 0
    for face in FACES:
        if face.source not in paths:
            sys.stderr.write(f"skipped {face.filename}: pass --droid\n")
            continue
        data = build(face, paths[face.source])
        target = HERE / face.filename
        if args.check:
            same = target.exists() and target.read_bytes() == data
            differ += not same
            sys.stderr.write(f"{'same' if same else 'DIFFERS'} {face.filename}\n")
        else:
            target.write_bytes(data)
            sys.stderr.write(f"{len(data):>9,} B {face.filename}\n")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
