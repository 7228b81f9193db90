"""Vietnamese mobile numbers as providers want them: international form without '+'
(84xxxxxxxxx), which ZNS's `phone` and eSMS's `Phone` both take.

An official's number may be written 0912 345 678, +84 912 345 678, 84912345678 or with dots
and dashes; mobile numbers are ten digits nationally (0 and a 3, 5, 7, 8 or 9 prefix).
"""

from __future__ import annotations

import re

from approvals.errors import InvalidInput

_SEPARATORS = re.compile(r"[\s.\-()]")
_MOBILE = re.compile(r"^84[35789]\d{8}$")


class NotAPhone(InvalidInput):
    """Not a Vietnamese mobile number."""


def international(phone: str) -> str:
    """'0912 345 678' -> '84912345678'; raises NotAPhone for anything else."""
    digits = _SEPARATORS.sub("", phone.strip())
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("0"):
        digits = "84" + digits[1:]
    if not _MOBILE.match(digits):
        raise NotAPhone(f"not a Vietnamese mobile number: {phone!r}")
    return digits
