"""Vietnamese mobile numbers as providers want them: international form without '+'
(84xxxxxxxxx), which ZNS's `phone` and eSMS's `Phone` both take. What a mobile number is, and
the forms people write it in, is the plan file's rule (`approvals.plan.reach.vietnamese_mobile`):
one rule for `plan check` and for every send."""

from __future__ import annotations

from approvals.errors import InvalidInput
from approvals.plan.reach import vietnamese_mobile


class NotAPhone(InvalidInput):
    """Not a Vietnamese mobile number."""


def international(phone: str) -> str:
    """'0912 345 678' or '+84912345678' -> '84912345678'; raises NotAPhone for anything else."""
    try:
        return vietnamese_mobile(phone).removeprefix("+")
    except ValueError as error:
        raise NotAPhone(f"not a Vietnamese mobile number: {error}") from error
