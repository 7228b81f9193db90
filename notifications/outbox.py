"""Queue an email in the caller's transaction: if the transaction rolls back, nothing is sent."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.db import utcnow
from notifications.models import OutboxMessage
from notifications.render import RenderedEmail

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


class HeaderInjection(ValueError):
    """A subject, name or address carries a control character (CR, LF, ...)."""


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str


def _clean_header(value: str, what: str) -> str:
    value = unicodedata.normalize("NFC", value)
    if _CONTROL.search(value):
        raise HeaderInjection(f"{what} contains a control character: {value!r}")
    return value


async def enqueue(
    session: AsyncSession,
    *,
    idempotency_key: str,
    kind: str,
    to: list[Recipient],
    email: RenderedEmail,
    domain: str,
) -> uuid.UUID | None:
    """Queue one message; a second call with the same key stores nothing and returns None."""
    recipients = []
    for person in to:
        name = _clean_header(person.name, "recipient name")
        address = _clean_header(person.email, "recipient address")
        if not _ADDRESS.match(address):
            raise HeaderInjection(f"not a valid email address: {address!r}")
        recipients.append({"name": name, "email": address})
    subject = _clean_header(email.subject, "subject")
    message_uuid = uuid.uuid4()
    values = dict(
        id=message_uuid, idempotency_key=idempotency_key, message_id=f"<{message_uuid}@{domain}>", kind=kind,
        recipients=recipients, subject=subject, text_body=email.text, html_body=email.html,
        status="queued", attempts=0, next_attempt_at=utcnow(), created_at=utcnow(),
    )
    dialect = session.bind.dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    stmt = (insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
            .execution_options(preserve_rowcount=True))  # else psycopg (async) reports rowcount -1 for INSERT
    result = await session.execute(stmt)
    if result.rowcount == 0:
        return None
    return message_uuid


async def find(session: AsyncSession, idempotency_key: str) -> OutboxMessage | None:
    return (await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key))).scalar()
