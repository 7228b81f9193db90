"""The error answers each kind of endpoint documents (RFC 9457 problem details, mapped in
service/errors.py), and where in a request a refusal lies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from approvals.errors import KehoachError
from service.api.schemas import ProblemDetails

# FastAPI's `responses=`: status -> the OpenAPI response object
Responses = dict[int | str, dict[str, Any]]
INVALID: Responses = {
    422: {
        "model": ProblemDetails,
        "description": "Not valid, or refused by a rule: `errors` says where and why; nothing was changed.",
    }
}
READ: Responses = {401: {"model": ProblemDetails, "description": "No valid API token."}, **INVALID}
ONE: Responses = {**READ, 404: {"model": ProblemDetails, "description": "No such id."}}
ACTION: Responses = {
    **READ,
    403: {"model": ProblemDetails, "description": "The account is a viewer: it may read only."},
    404: {"model": ProblemDetails, "description": "No such id."},
    409: {"model": ProblemDetails, "description": "Already settled, escalated, cancelled or revoked: nothing changed."},
}
CREATE: Responses = {k: v for k, v in ACTION.items() if k != 404}


@contextmanager
def at(*loc: str | int) -> Iterator[None]:
    """Wrap a transaction: whatever it raises has rolled it back; a refusal is placed at `loc`
    (the field it concerns) for its answer."""
    try:
        yield
    except KehoachError as exc:
        if not exc.loc:
            exc.loc = loc
        raise
