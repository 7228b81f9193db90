"""The font every text of a signature's appearance is set in: DejaVu Serif, the report's own
(`approvals/consolidated/fonts`), embedded as a subset with its Unicode map, so that a name like
"Nguyễn Thị Lấp Lánh Ánh" renders and copies out with its diacritics. pyHanko's default font is
a PDF standard font in WinAnsi, which garbles them (pyHanko issue 459).

pyHanko's `GlyphAccumulator` (0.38) writes the font's glyph widths (`/W`) and its kerning in
the font's own units, which PDF reads as thousandths of an em: right for a font of 1000 units
per em, but DejaVu has 2048, and each glyph then advances twice its width (found by rendering a
stamp). `_Thousandths` shapes in thousandths instead; the embedded outlines keep their own units,
which viewers scale by the font's `head` table."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory
from pyhanko.pdf_utils.writer import BasePdfFileWriter

# The report's own fonts (approvals/consolidated/fonts), found by path: approvals.consolidated will
# import this package to sign what it issues, so this package imports nothing of it at run time.
FONTS = Path(__file__).resolve().parent.parent / "consolidated" / "fonts"
REGULAR = FONTS / "DejaVuSerif.ttf"
ITALIC = FONTS / "DejaVuSerif-Italic.ttf"
PDF_UNITS_PER_EM = 1000

# fontTools says, each time it subsets DejaVu, that it drops the FontForge table it cannot subset.
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)


class _Thousandths(GlyphAccumulator):
    """A glyph accumulator that measures in thousandths of an em, whatever the font's units."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._to_thousandths = PDF_UNITS_PER_EM / self.units_per_em
        self.hb_font.scale = (PDF_UNITS_PER_EM, PDF_UNITS_PER_EM)  # HarfBuzz's advances and offsets
        self.units_per_em = PDF_UNITS_PER_EM  # what pyHanko divides them by

    def _extract_subset(self, options: Any = None) -> None:
        """pyHanko's subset drops the layout tables (HarfBuzz shaped the text from the font's bytes
        when it was fed). fontTools (4.69) still decompiles them first to look at their versions:
        most of a signature's CPU. Dropped here before it looks, with the legacy `kern` table that
        fontTools drops where GPOS is (`legacy_kern`), the subset is byte for byte the same."""
        if options is None:
            legacy = ("kern",) if "GPOS" in self.tt else ()
            for tag in ("GPOS", "GDEF", "GSUB", *legacy):
                if tag in self.tt:
                    del self.tt[tag]
        super()._extract_subset(options)

    def _get_cid_and_width(self, glyph_id: int) -> tuple[int, int]:
        if glyph_id in self._glyphs:
            return self._glyphs[glyph_id]
        cid, width = super()._get_cid_and_width(glyph_id)  # in the font's units
        self._glyphs[glyph_id] = scaled = (cid, round(width * self._to_thousandths))
        return scaled


@dataclass(frozen=True)
class VietnameseFont(GlyphAccumulatorFactory):
    """DejaVu Serif (regular or italic) at a size, for pyHanko's text boxes."""

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: Any = None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return _Thousandths(
            writer=writer,
            font_handle=io.BytesIO(_font_file(self.font_file)),  # fontTools reads its tables lazily
            font_size=self.font_size,
            ot_script_tag=self.ot_script_tag,
            ot_language_tag=self.ot_language_tag,
            writing_direction=self.writing_direction,
            bcp47_lang_code=self.bcp47_lang_code,
            obj_stream=obj_stream,
        )


@lru_cache(maxsize=4)
def _font_file(path: str) -> bytes:
    return Path(path).read_bytes()


def serif(size: int, *, italic: bool = False) -> VietnameseFont:
    return VietnameseFont(str(ITALIC if italic else REGULAR), font_size=size, bcp47_lang_code="vi")
