"""Shared by the notification tests: configuration, queueing and reading outbox rows."""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select, update

from approvals.db import utcnow
from notifications.dispatcher import Dispatcher, RetryPolicy, SmtpConfig
from notifications.models import MessageStatus, OutboxMessage
from notifications.outbox import Recipient, enqueue, find
from notifications.render import RenderedEmail

DOMAIN = "kehoach.test"
NAME = "Nông Thị Hạnh"
ADDRESS = "hanh.nt@lang-son.example"


def smtp_config(port: int, **overrides) -> SmtpConfig:
    values = dict(
        host="127.0.0.1",
        port=port,
        sender="kehoach@lang-son.example",
        sender_name="Hệ thống kehoach",
        local_hostname=DOMAIN,
        timeout=5,
    )
    values.update(overrides)
    return SmtpConfig(**values)


def link_for(argument: str) -> str:
    return f"https://kehoach.example/a/{argument}-resolved"


def dispatcher(database, port: int, *, smtp: dict | None = None, pool_size: int = 4, **retry) -> Dispatcher:
    return Dispatcher(
        database,
        smtp_config(port, **(smtp or {})),
        resolvers={"approval_link": link_for},
        retry=RetryPolicy(**retry),
        pool_size=pool_size,
    )


def simple_email(
    subject: str | None = None, *, text: str = "Nội dung thư.\n", html: str = "<p>Nội dung thư.</p>"
) -> RenderedEmail:
    return RenderedEmail(subject=subject or f"Thư thử {uuid.uuid4().hex}", text=text, html=html)


async def queue(
    database, key: str, email: RenderedEmail | None = None, to: list[Recipient] | None = None, **extra
) -> OutboxMessage:
    async with database.transaction() as session:
        message_uuid = await enqueue(
            session,
            idempotency_key=key,
            kind="approval_request",
            to=to or [Recipient(NAME, ADDRESS)],
            email=email or simple_email(),
            domain=DOMAIN,
            **extra,
        )
    assert message_uuid is not None
    return await row(database, key)


async def queue_many(database, keys: list[str], *, per_transaction: int = 500) -> list[str]:
    """Queue one simple message per key; return their Message-IDs."""
    for start in range(0, len(keys), per_transaction):
        async with database.transaction() as session:
            for key in keys[start : start + per_transaction]:
                assert (
                    await enqueue(
                        session,
                        idempotency_key=key,
                        kind="approval_request",
                        to=[Recipient(NAME, ADDRESS)],
                        email=simple_email(f"Thư {key}"),
                        domain=DOMAIN,
                    )
                    is not None
                )
    async with database.transaction() as session:
        return list(
            (
                await session.execute(select(OutboxMessage.message_id).where(OutboxMessage.idempotency_key.in_(keys)))
            ).scalars()
        )


async def row(database, key: str) -> OutboxMessage | None:
    async with database.transaction() as session:
        return await find(session, key)


async def rows(database, prefix: str) -> list[OutboxMessage]:
    async with database.transaction() as session:
        return list(
            (
                await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key.like(f"{prefix}%")))
            ).scalars()
        )


async def set_row(database, key: str, **values) -> None:
    async with database.transaction() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.idempotency_key == key)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


async def due_keys(database) -> list[str]:
    now = utcnow()
    async with database.transaction() as session:
        return list(
            (
                await session.execute(
                    select(OutboxMessage.idempotency_key).where(
                        or_(
                            (OutboxMessage.status == MessageStatus.queued.value)
                            & (OutboxMessage.next_attempt_at <= now),
                            (OutboxMessage.status == MessageStatus.sending.value) & (OutboxMessage.lease_until < now),
                        )
                    )
                )
            ).scalars()
        )


def by_message_id(message_id: str):
    return lambda received: received.message["Message-ID"] == message_id
