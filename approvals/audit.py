"""The append-only audit log: each row's hash covers its content and the previous row's hash.

A transaction's audit rows are chained and written as its very last statements, just before
it commits: the chain's one global lock (on PostgreSQL) is taken there and held only for
the append, never while the transaction renders its emails and calendar files, which it did
before. So decisions, sweeps and stage openings queue behind each other for a few
milliseconds, not for the whole of their work. The append is two round trips: the lock and
the chain's head in one call (`kehoach_audit_head`, migration 0016), then one insert of every
row of the transaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from approvals.db import dialect_name, table_of, utcnow
from approvals.models import AuditEvent

GENESIS = "0" * 64
_APPEND_LOCK = 0x6B65686F  # 'keho': serialises appends on PostgreSQL
_PENDING = "kehoach_audit_pending"


def _row_hash(
    prev_hash: str, at: str, actor: str, action: str, entity: str, entity_id: str, data: dict[str, Any]
) -> str:
    body = json.dumps(
        [prev_hash, at, actor, action, entity, entity_id, data],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


async def append(
    session: AsyncSession, *, actor: str, action: str, entity: str, entity_id: str, data: dict[str, Any]
) -> AuditEvent:
    """Add one row to the caller's transaction; it is chained and written when the transaction
    commits (rolled back with it). The row's time is now; its hashes are set at the commit."""
    row = AuditEvent(at=utcnow(), actor=actor, action=action, entity=entity, entity_id=entity_id, data=data)
    session.sync_session.info.setdefault(_PENDING, []).append(row)
    return row


# Built once: every transaction that changes anything runs them at its commit.
# On PostgreSQL the lock and the read of the head are one call (migration 0016).
_LOCKED_HEAD = text("SELECT kehoach_audit_head(:key)")
_HEAD = select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
_INSERT = insert(table_of(AuditEvent.__table__))


def _chain(session: Session, rows: list[AuditEvent]) -> None:
    if dialect_name(session) == "postgresql":
        prev_hash = session.connection().execute(_LOCKED_HEAD, {"key": _APPEND_LOCK}).scalar() or GENESIS
    else:
        prev_hash = session.connection().execute(_HEAD).scalar() or GENESIS
    values = []
    for row in rows:
        row.prev_hash = prev_hash
        row.hash = prev_hash = _row_hash(
            prev_hash, row.at.isoformat(), row.actor, row.action, row.entity, row.entity_id, row.data
        )
        values.append(
            {
                "at": row.at,
                "actor": row.actor,
                "action": row.action,
                "entity": row.entity,
                "entity_id": row.entity_id,
                "data": row.data,
                "prev_hash": row.prev_hash,
                "hash": row.hash,
            }
        )
    # A Core insert of plain rows: the ORM's unit of work would cost more than the append itself.
    session.connection().execute(_INSERT, values[0] if len(values) == 1 else values)


@event.listens_for(Session, "before_commit")
def _append_before_commit(session: Session) -> None:
    """Write the transaction's audit rows last (see the module's docstring)."""
    rows = session.info.pop(_PENDING, None)
    if rows:
        _chain(session, rows)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


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
            return count, ChainBreak(
                row.id, "previous-hash link does not match (a row before it was deleted or edited)"
            )
        expected = _row_hash(prev_hash, row.at.isoformat(), row.actor, row.action, row.entity, row.entity_id, row.data)
        if expected != row.hash:
            return count, ChainBreak(row.id, "content does not match its hash (the row was edited)")
        prev_hash = row.hash
        count += 1
    return count, None
