"""kehoach's errors: one base, and a subclass per meaning.

Every error the project raises on purpose is a `KehoachError`. Each meaning carries the HTTP
status the API answers with and the message key (`service/locale/messages.yaml`, vi and en) of
the title a person reads. Modules raise their own subclasses of these (`AlreadyDecided` is a
`Conflict`, `FileRefused` an `InvalidInput`) so that callers catch what they can act on, and
the service maps each meaning to an answer once (`service/errors.py`):

| meaning | status | `kind` | raised when |
|---|---|---|---|
| `NotFound` | 404 | `not_found` | an id names nothing of that kind |
| `Conflict` | 409 | `conflict` | no longer in a state the action applies to (settled, escalated, finished) |
| `Refused` | 422 | `refused` | a rule forbids the action (separation of duties, an official not in force) |
| `InvalidLink` | 404 | `invalid_link` | a token unknown, tampered, expired, used or revoked, or its stage gone |
| `InvalidInput` | 422 | `invalid_input` | what was sent is malformed (no comment, an id the plan lacks, a bad file) |
| `Unavailable` | 503 | `unavailable` | a part kehoach needs (Prefect, SMTP) cannot be reached now: try again |

`kind` is the meaning as a word: the API's 422 answers carry it as each error's `type`.
"""

from __future__ import annotations

from typing import ClassVar


class KehoachError(Exception):
    """The base: an error of kehoach's own, with its answer. One raised bare is a bug (500)."""

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "internal"
    key: ClassVar[str] = "error.internal"
    loc: tuple[str | int, ...] = ()  # where in a request the fault lies ("body", "unit"): set by the service


class NotFound(KehoachError):
    status = 404
    kind = "not_found"
    key = "error.not_found"


class Conflict(KehoachError):
    status = 409
    kind = "conflict"
    key = "error.conflict"


class Refused(KehoachError):
    status = 422
    kind = "refused"
    key = "error.refused"


class InvalidLink(KehoachError):
    """Callers answer every kind of dead link alike: the page never tells which it was."""

    status = 404
    kind = "invalid_link"
    key = "error.invalid_link"


class InvalidInput(KehoachError):
    status = 422
    kind = "invalid_input"
    key = "error.invalid_input"


class Unavailable(KehoachError):
    status = 503
    kind = "unavailable"
    key = "error.unavailable"


MEANINGS: tuple[type[KehoachError], ...] = (NotFound, Conflict, Refused, InvalidLink, InvalidInput, Unavailable)
