"""The font of the signatures' texts: DejaVu Serif, embedded, with each glyph's width written in
thousandths of an em as PDF reads it (pyHanko 0.38 writes the font's own units, 2048 an em for
DejaVu, which doubled every advance); and what it draws is what a reader copies out."""

from __future__ import annotations

import io

from fontTools.ttLib import TTFont
from pyhanko.pdf_utils.reader import PdfFileReader

from approvals.signing.fonts import ITALIC, REGULAR
from approvals.signing.form import fields_of


def _widths(cidfont) -> dict[int, int]:
    """A CID font's /W array: [first [w w ...] first [w ...] ...] as {cid: width}."""
    found, entries = {}, list(cidfont["/W"])
    for first, run in zip(entries[::2], entries[1::2], strict=True):
        for offset, width in enumerate(run):
            found[int(first) + offset] = int(width)
    return found


def test_each_glyph_advances_by_its_own_width_in_thousandths_of_an_em(issued):
    fields = fields_of(PdfFileReader(io.BytesIO(issued.sealed)).root)
    for name, path in (("number", REGULAR), ("place_date", ITALIC)):
        font = TTFont(str(path))
        assert font["head"].unitsPerEm == 2048  # why the scaling matters
        order, metrics = font.getGlyphOrder(), font["hmtx"].metrics
        (type0,) = fields[name]["/AP"]["/N"]["/Resources"]["/Font"].values()
        widths = _widths(type0.get_object()["/DescendantFonts"][0].get_object())
        assert len(widths) >= 10  # the glyphs of "Số: 117/BC-SKHCN", of the place and date
        for gid, width in widths.items():  # CIDs are the font's glyph ids (Identity)
            assert width == round(metrics[order[gid]][0] * 1000 / 2048), (name, order[gid])
