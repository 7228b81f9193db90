"""The append-only audit log: each row's hash covers its content and the previous row's hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.db import utcnow
from approvals.models import AuditEvent

GENESIS = "0" * 64
_APPEND_LOCK = 0x6B65686F  # 'keho': serialises appends on PostgreSQL


def _row_hash(prev_hash: str, at: str, actor: str, action: str, entity: str, entity_id: str, data: dict) -> str:
    body = json.dumps(
        [prev_hash, at, actor, action, entity, entity_id, data], ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(body.encode()).hexdigest()


async def append(session: AsyncSession, *, actor: str, action: str, entity: str, entity_id: str, data: dict) -> AuditEvent:
    """Append one row in the caller's transaction; concurrent appenders queue behind one lock."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
    prev = (await session.execute(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))).scalar()
    at = utcnow()
    prev_hash = prev or GENESIS
    event = AuditEvent(
        at=at, actor=actor, action=action, entity=entity, entity_id=entity_id, data=data, prev_hash=prev_hash,
        hash=_row_hash(prev_hash, at.isoformat(), actor, action, entity, entity_id, data),
    )
    session.add(event)
    await session.flush()
    return event


@dataclass(frozen=True)
class ChainBreak:
    row_id: int
    reason: str


async def verify(session: AsyncSession) -> tuple[int, ChainBreak | None]:
    """Recompute the chain; return the number of rows checked and the first broken row, if any."""
    prev_hash = GENESIS
    count = 0
    rows = await session.stream_scalars(select(AuditEvent).order_by(AuditEvent.id))
    async for row in rows:
        if row.prev_hash != prev_hash:
            return count, ChainBreak(row.id, "previous-hash link does not match (a row before it was deleted or edited)")
        expected = _row_hash(prev_hash, row.at.isoformat(), row.actor, row.action, row.entity, row.entity_id, row.data)
        if expected != row.hash:
            return count, ChainBreak(row.id, "content does not match its hash (the row was edited)")
        prev_hash = row.hash
        count += 1
    return count, None
