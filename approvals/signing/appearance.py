"""What the signatures and the register's entries look like on the page, as Decree 30/2020's
Appendix I (Part I, II.7.d and II.8.a) has them:

- the director's signature: the image of their handwritten signature, blue, a PNG with a
  transparent background, centred between the position title and the name;
- the agency's signature: the image of its red seal at its real size, covering about the left
  third of the director's signature image;
- the number and the date: text, in the report's own font, size and style.

Every text is set in DejaVu Serif, embedded (`fonts`), so that its diacritics render and copy
out."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp import BaseStamp, BaseStampStyle, TextStampStyle

from approvals.errors import InvalidInput
from approvals.signing.fonts import serif
from approvals.signing.form import Rect

MM = 72 / 25.4
BLUE = (0.08, 0.16, 0.72)
CAPTION_SIZE = 6  # points: a line under the director's signature image
CAPTION_HEIGHT = 2 * CAPTION_SIZE + 2
_MID = layout.AxisAlignment.ALIGN_MID
_FIT = layout.InnerScaling.STRETCH_TO_FIT  # keeps the image's proportions
_SHRINK = layout.InnerScaling.SHRINK_TO_FIT  # a long name gets smaller, never larger


def png(data: bytes, *, what: str) -> Image.Image:
    """A signature's or a seal's image: a PNG with a transparent background, as the decree asks."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # Pillow raises many kinds for a file it cannot read
        raise InvalidInput(f"the {what} image is not a readable PNG: {error}") from error
    if image.format != "PNG":
        raise InvalidInput(f"the {what} image must be a PNG with a transparent background, not {image.format}")
    if "A" not in image.getbands() and "transparency" not in image.info:
        raise InvalidInput(f"the {what} image has no transparent background (no alpha channel)")
    return image.convert("RGBA")


@dataclass(frozen=True)
class ImageStampStyle(BaseStampStyle):
    """A stamp that is only its image, filling the field's box (the seal: no text, no border)."""

    border_width: int = 0
    background_opacity: float = 1.0
    background_layout: layout.SimpleBoxLayoutRule = field(
        default_factory=lambda: layout.SimpleBoxLayoutRule(x_align=_MID, y_align=_MID, inner_content_scaling=_FIT)
    )

    def create_stamp(
        self, writer: BasePdfFileWriter, box: layout.BoxConstraints, text_params: dict[str, Any]
    ) -> _Image:
        return _Image(writer, self, box)


class _Image(BaseStamp):
    def _render_inner_content(self) -> list[bytes]:
        return []  # the background is all there is


def seal_style(seal: Image.Image) -> ImageStampStyle:
    """The agency's signature: its seal, nothing else (II.8.a): the seal names the agency, and
    the signature's details are in the signature, where a verifier reads them."""
    return ImageStampStyle(background=PdfImage(seal))


def director_style(signature: Image.Image, box: Rect) -> TextStampStyle:
    """The director's signature in its field's `box`: the image of their signature (II.7.d) above
    a small caption in the same blue, "Ký số: <the certificate's name>" and the signing time in
    ISO 8601, Vietnam's time zone, under the image's right two thirds (the seal covers the left
    one). The decree asks for the image alone; the caption is added because a printed copy keeps
    no signature panel, and because it names whoever actually signed (from the certificate),
    where the typed name below is only who was meant to."""
    caption_box = TextBoxStyle(
        font=serif(CAPTION_SIZE),
        font_size=CAPTION_SIZE,
        leading=CAPTION_SIZE + 1,
        border_width=0,
        text_color=BLUE,
        box_layout_rule=layout.SimpleBoxLayoutRule(x_align=_MID, y_align=_MID),
    )
    return TextStampStyle(
        stamp_text="Ký số: %(name)s\n%(when)s",
        text_box_style=caption_box,
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=_MID,
            y_align=layout.AxisAlignment.ALIGN_MIN,
            margins=layout.Margins(left=round((box[2] - box[0]) / 3)),
            inner_content_scaling=_SHRINK,
        ),
        border_width=0,
        background=PdfImage(signature),
        background_opacity=1.0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=_MID,
            y_align=layout.AxisAlignment.ALIGN_MAX,
            margins=layout.Margins(bottom=CAPTION_HEIGHT),
            inner_content_scaling=_FIT,
        ),
    )


def director_box(space: tuple[float, float, float, float], signature: Image.Image) -> Rect:
    """The director's field: the signature image as large as fits in `space` (between the title
    and the name) with its caption under it, centred; its width is the image's."""
    x1, y1, x2, y2 = space
    scale = min((x2 - x1) / signature.width, (y2 - y1 - CAPTION_HEIGHT) / signature.height)
    width, height = signature.width * scale, signature.height * scale + CAPTION_HEIGHT
    left, bottom = x1 + (x2 - x1 - width) / 2, y1 + (y2 - y1 - height) / 2
    return round(left), round(bottom), round(left + width), round(bottom + height)


def seal_box(director: Rect, diameter: float) -> Rect:
    """The seal over the left third of the director's signature image (II.8.a): its right edge a
    third of the way across the image, centred on the image's height (above the caption)."""
    x1, y1, x2, y2 = director
    right = x1 + (x2 - x1) / 3
    middle = (y1 + CAPTION_HEIGHT + y2) / 2
    return round(right - diameter), round(middle - diameter / 2), round(right), round(middle + diameter / 2)


def seal_diameter(seal: Image.Image, mm: float | None) -> float:
    """The seal's real size in points: as told, else from the PNG's resolution (a scan keeps it),
    else 38 mm, the common size of an agency's round seal."""
    if mm is not None:
        return mm * MM
    dpi = seal.info.get("dpi")
    if dpi and float(dpi[0]) > 1:
        return seal.width / float(dpi[0]) * 72
    return 38 * MM


def text_appearance(
    writer: BasePdfFileWriter, width: int, height: int, text: str, *, size: int, italic: bool
) -> generic.StreamObject:
    """A line of text centred in a box: how a register entry shows (a form field's appearance)."""
    style = TextStampStyle(
        stamp_text=text.replace("%", "%%"),
        text_box_style=TextBoxStyle(
            font=serif(size, italic=italic),
            font_size=size,
            border_width=0,
            box_layout_rule=layout.SimpleBoxLayoutRule(x_align=_MID, y_align=_MID),
        ),
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=_MID,
            y_align=layout.AxisAlignment.ALIGN_MIN,
            margins=layout.Margins(bottom=round(size / 3)),  # the baseline, with room for descenders
            inner_content_scaling=_SHRINK,
        ),
        border_width=0,
    )
    stamp = style.create_stamp(writer, layout.BoxConstraints(width=width, height=height), {})
    return stamp.as_form_xobject()
