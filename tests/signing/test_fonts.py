"""The font of the signatures' texts: DejaVu Serif, embedded, with each glyph's width written in
thousandths of an em as PDF reads it (pyHanko 0.38 writes the font's own units, 2048 an em for
DejaVu, which doubled every advance); and what it draws is what a reader copies out."""

from __future__ import annotations

import io

import pytest
from fontTools.ttLib import TTFont
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter

from approvals.signing.fonts import ITALIC, REGULAR, serif
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


TEXT = "Nông Thị Hạnh, Giám đốc Sở Khoa học và Công nghệ — Lạng Sơn, ngày 30 tháng 11 năm 2026"


def _embedded(italic: bool, *, stock: bool) -> bytes:
    """The font file a signature's text embeds: our subset, or pyHanko's own way of making it."""
    engine = serif(11, italic=italic).create_font_engine(PdfFileWriter())
    engine.shape(TEXT)
    if stock:
        GlyphAccumulator._extract_subset(engine)
        engine._subset_created = True
    engine.prepare_write()
    engine.tt["head"].modified = 0  # fontTools stamped it with the clock when pyHanko wrote it
    engine.tt.recalcTimestamp = False
    out = io.BytesIO()
    engine.tt.save(out)
    return out.getvalue()


@pytest.mark.parametrize("italic", [False, True], ids=["regular", "italic"])
def test_the_subset_skipping_the_layout_tables_is_the_one_pyhanko_makes(italic):
    """The layout tables are dropped before fontTools subsets (it decompiled them only to drop
    them): the embedded font is byte for byte what pyHanko's own subset gives, without GSUB,
    GPOS, GDEF or the legacy kern table, and with every glyph the text needs."""
    ours = _embedded(italic, stock=False)
    assert ours == _embedded(italic, stock=True)
    font = TTFont(io.BytesIO(ours))
    assert not {"GSUB", "GPOS", "GDEF", "kern"} & set(font.keys())
    assert {"glyf", "hmtx", "cmap"} <= set(font.keys())
    glyphs = font.getBestCmap()
    assert all(ord(c) in glyphs and font["glyf"][glyphs[ord(c)]].numberOfContours for c in set(TEXT) - {" "})
