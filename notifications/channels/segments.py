"""How many SMS segments a text takes (3GPP TS 23.038 / 23.040), which is what an SMS costs
and whether a phone shows it as one message.

A text entirely in the GSM 7-bit alphabet takes 160 characters in one segment, 153 per part
when concatenated (a character of the extension table, such as '€' or '[', counts twice).
Anything else is sent as UCS-2 (UTF-16): 70 code units in one segment, 67 per part. Vietnamese
with its diacritics (ấ, ườ, ộ...) is never GSM-7, so kehoach's texts are UCS-2: a message that
must fit two segments has 134 code units, the short link included.
"""

from __future__ import annotations

import math

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def sms_units(text: str) -> int:
    """The text's length as an SMS counts it: septets for GSM-7, UTF-16 code units for UCS-2."""
    if is_gsm7(text):
        return len(text) + sum(1 for c in text if c in GSM7_EXTENSION)
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    """1 for a text that fits one SMS, else the parts of the concatenated message (0 for '')."""
    units = sms_units(text)
    single, part = (GSM7_SINGLE, GSM7_PART) if is_gsm7(text) else (UCS2_SINGLE, UCS2_PART)
    if units <= single:
        return 1 if units else 0
    return math.ceil(units / part)
