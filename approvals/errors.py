"""kehoach's errors: one base, and a subclass per meaning.

Every error the project raises on purpose is a `KehoachError`. Each meaning carries the HTTP
status the API answers with and the message key (`service/locale/messages.yaml`, vi and en) of
the title a person reads. Modules raise their own subclasses of these (`AlreadyDecided` is a
`Conflict`, `FileRefused` an `InvalidInput`) so that callers catch what they can act on, and
the service maps each meaning to an answer once (`service/errors.py`):

| meaning | status | raised when |
|---|---|---|
| `NotFound` | 404 | an id names nothing of that kind |
| `Conflict` | 409 | the thing is no longer in a state the action applies to (settled, escalated, finished) |
| `Refused` | 422 | a rule forbids the action (separation of duties, an official not in force) |
| `InvalidLink` | 404 | a link's token is unknown, tampered, expired, used or revoked, or its stage gone |
| `InvalidInput` | 422 | what was sent is malformed (a comment missing, a file of the wrong kind) |
| `Unavailable` | 503 | a part kehoach needs (Prefect, the SMTP server) cannot be reached now: try again |
"""

from __future__ import annotations

from typing import ClassVar


class KehoachError(Exception):
    """The base: an error of kehoach's own, with its answer. One raised bare is a bug (500)."""

    status: ClassVar[int] = 500
    key: ClassVar[str] = "error.internal"
    loc: tuple[str | int, ...] = ()  # where in a request the fault lies ("body", "unit"): set by the service


class NotFound(KehoachError):
    status = 404
    key = "error.not_found"


class Conflict(KehoachError):
    status = 409
    key = "error.conflict"


class Refused(KehoachError):
    status = 422
    key = "error.refused"


class InvalidLink(KehoachError):
    """Callers answer every kind of dead link alike: the page never tells which it was."""

    status = 404
    key = "error.invalid_link"


class InvalidInput(KehoachError):
    status = 422
    key = "error.invalid_input"


class Unavailable(KehoachError):
    status = 503
    key = "error.unavailable"


MEANINGS: tuple[type[KehoachError], ...] = (NotFound, Conflict, Refused, InvalidLink, InvalidInput, Unavailable)
