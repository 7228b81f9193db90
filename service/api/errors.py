"""Domain refusals as HTTP answers, and the error answers each kind of endpoint documents."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException

from approvals.coordination import Conflict, NotFound
from approvals.delegation import DelegationRefused
from approvals.requests import AlreadyDecided, Refused
from service.api.schemas import ErrorRead

READ = {401: {"model": ErrorRead, "description": "No valid API token."}}
ONE = {**READ, 404: {"model": ErrorRead, "description": "No such id."}}
ACTION = {
    **READ,
    403: {"model": ErrorRead, "description": "The account is a viewer: it may read only."},
    404: {"model": ErrorRead, "description": "No such id."},
    409: {"model": ErrorRead, "description": "Already settled, escalated, cancelled or revoked: nothing changed."},
}
CREATE = {k: v for k, v in ACTION.items() if k != 404}


def refused(message: str, *loc: str | int) -> HTTPException:
    """A rule refused the action: 422 in the same shape as a validation error, with the field's path."""
    return HTTPException(422, [{"loc": list(loc or ("body",)), "msg": message, "type": "refused"}])


@contextmanager
def domain_errors(*loc: str | int) -> Iterator[None]:
    """Wrap a transaction: whatever it raises has rolled it back; answer it plainly."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except AlreadyDecided:
        raise HTTPException(409, "This request is already settled; nothing was changed.") from None
    except Conflict as exc:
        raise HTTPException(409, f"{exc}; nothing was changed.") from None
    except (Refused, DelegationRefused) as exc:
        raise refused(str(exc), *loc) from None
