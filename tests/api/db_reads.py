"""Reading the database back in the API's tests: what an action changed, and a snapshot to show
that a refused one changed nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from approvals.models import Assignment, AuditEvent
from notifications.models import OutboxMessage


async def scalar_one(database, query):
    async with database.sessions() as session:
        return (await session.execute(query)).scalar_one()


async def scalars(database, query) -> list:
    async with database.sessions() as session:
        return list((await session.execute(query)).scalars())


async def audit_rows(database, entity_id) -> list[AuditEvent]:
    return await scalars(
        database, select(AuditEvent).where(AuditEvent.entity_id == str(entity_id)).order_by(AuditEvent.id)
    )


async def snapshot(database) -> tuple[int, int, list]:
    audit = await scalar_one(database, select(func.count()).select_from(AuditEvent))
    outbox = await scalar_one(database, select(func.count()).select_from(OutboxMessage))
    tokens = sorted((str(a.id), a.token_hash, a.status) for a in await scalars(database, select(Assignment)))
    return audit, outbox, tokens
