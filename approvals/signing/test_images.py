"""A signature image and a seal drawn for the demo and the suite, each marked as a test: PNGs
with a transparent background, as Decree 30/2020 asks of the real ones (Appendix I, II.7.d and
II.8.a). Production configures each signer's own: the director's scanned signature and the
agency's seal, scanned at its real size.

    signature = draw_test_signature("Nông Thị Hạnh")
    seal = draw_test_seal("Sở Khoa học và Công nghệ", governing="UBND tỉnh Lạng Sơn")
"""

from __future__ import annotations

import io
import math
import unicodedata
import zlib

from PIL import Image, ImageDraw, ImageFont

from approvals.signing.fonts import FONTS

SIGNATURE_BLUE = (18, 45, 170, 255)
SEAL_RED = (210, 24, 32, 255)
SEAL_DPI = 300  # a scan's resolution: 38 mm at 300 dpi is 449 pixels
SEAL_MM = 38
TEST_WORD = "THỬ NGHIỆM"


def _png(image: Image.Image, **info: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **info)
    return out.getvalue()


def draw_test_signature(name: str, *, width: int = 600, height: int = 200) -> bytes:
    """A handwritten-looking signature for `name`: blue strokes, a flourish whose shape depends on
    the name (two signers' differ), and a small "THỬ NGHIỆM" under it."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    seed = zlib.crc32(unicodedata.normalize("NFC", name).encode())
    points = []
    for i in range(60):
        t = i / 59
        wobble = math.sin(t * math.pi * (3 + seed % 4) + seed % 7) * height * 0.22
        loop = math.sin(t * math.pi * 9) * height * 0.08
        points.append((width * (0.06 + 0.8 * t), height * 0.48 + wobble + loop))
    draw.line(points, fill=SIGNATURE_BLUE, width=7, joint="curve")
    draw.line([(width * 0.18, height * 0.74), (width * 0.9, height * 0.6)], fill=SIGNATURE_BLUE, width=5)
    font = ImageFont.truetype(str(FONTS / "DejaVuSerif.ttf"), size=max(12, height // 10))
    draw.text((width * 0.5, height * 0.93), TEST_WORD, fill=SIGNATURE_BLUE, font=font, anchor="ms")
    return _png(image)


def draw_test_seal(agency: str, *, governing: str = "", size: int = round(SEAL_MM / 25.4 * SEAL_DPI)) -> bytes:
    """A round red seal, as Vietnamese agencies' seals are laid out: the governing body's and the
    agency's names round the rim, a star in the middle, and "THỬ NGHIỆM" across it; 38 mm across
    at the resolution the PNG records (300 dpi), so it prints at its real size."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    centre = size / 2
    rim = size * 0.025
    draw.ellipse((rim, rim, size - rim, size - rim), outline=SEAL_RED, width=round(size * 0.03))
    inner = size * 0.25
    draw.ellipse((inner, inner, size - inner, size - inner), outline=SEAL_RED, width=round(size * 0.012))
    _star(draw, centre, centre, size * 0.13)
    font = ImageFont.truetype(str(FONTS / "DejaVuSerif-Bold.ttf"), size=round(size * 0.062))
    text = unicodedata.normalize("NFC", f"{governing} • {agency}" if governing else agency).upper()
    _round_text(image, text, centre, size * 0.37, font)
    small = ImageFont.truetype(str(FONTS / "DejaVuSerif-Bold.ttf"), size=round(size * 0.036))
    draw.text((centre, centre + size * 0.175), TEST_WORD, fill=SEAL_RED, font=small, anchor="mm")
    return _png(image, dpi=(SEAL_DPI, SEAL_DPI))


def _star(draw: ImageDraw.ImageDraw, x: float, y: float, radius: float) -> None:
    points = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.4
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((x + r * math.cos(angle), y + r * math.sin(angle)))
    draw.polygon(points, fill=SEAL_RED)


def _round_text(image: Image.Image, text: str, centre: float, radius: float, font: ImageFont.FreeTypeFont) -> None:
    """`text` round the circle of `radius`, clockwise from the bottom left, each letter upright
    to the rim (drawn on its own tile, rotated and pasted)."""
    span = 1.7 * math.pi  # leave a gap at the bottom
    step = span / max(len(text), 1)
    tile = round(font.size * 1.6)
    for i, letter in enumerate(text):
        angle = math.pi / 2 + (math.pi * 2 - span) / 2 + step * (i + 0.5)  # from the bottom left, clockwise
        glyph = Image.new("RGBA", (tile, tile), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((tile / 2, tile / 2), letter, fill=SEAL_RED, font=font, anchor="mm")
        rotated = glyph.rotate(-math.degrees(angle) - 90, resample=Image.Resampling.BICUBIC)
        x = centre + radius * math.cos(angle) - tile / 2
        y = centre + radius * math.sin(angle) - tile / 2
        image.alpha_composite(rotated, (round(x), round(y)))
