"""Every decision, escalation, expiry and cycle transition as a Prefect event, so ops can hang
Prefect automations (webhooks, notifications) on them without code here.

They are read from the audit log, which already records each of them in the transaction that
made it: a relay in the web service sends new rows to Prefect's events API in order, a batch at
a time, and moves a cursor past them. Several web processes share the work through a lease on
the cursor; an event's id is derived from its audit row's hash, so a batch sent again after a
crash is stored once by Prefect. `approvals/` knows nothing of Prefect; this does.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import select, update

from approvals.db import Database, rowcount, utcnow
from approvals.models import AuditEvent, RelayCursor

log = logging.getLogger("kehoach.events")
CURSOR = "prefect_events"
BATCH = 200
LEASE = dt.timedelta(seconds=60)
NAMESPACE = uuid.UUID("5a1e7c3e-7f0b-4c1e-9d62-6b6568686f61")
RELAYED = {
    "decision.recorded",
    "request.escalated",
    "request.expired",
    "request.overdue",
    "request.reminded",
    "submission.missing",
    "stage.recorded",
    "cycle.cancelled",
    "cycle.finished",
    "cycle.attention",
    "cycle.restarted",
    "cycle.scheduled",
    "cycle.run_claimed",
}


def prefect_event(row: AuditEvent) -> dict:
    """The audit row as a Prefect event: `kehoach.<action>` about the request or cycle."""
    resource_id = f"kehoach.{row.entity.replace('_', '-')}.{row.entity_id}"
    return {
        "id": str(uuid.uuid5(NAMESPACE, row.hash)),
        "occurred": row.at.isoformat(),
        "event": f"kehoach.{row.action}",
        "resource": {
            "prefect.resource.id": resource_id,
            "prefect.resource.name": row.entity,
            "kehoach.actor": row.actor,
        },
        "payload": {**(row.data or {}), "audit_row": row.id},
    }


async def _lease(db: Database, now: dt.datetime) -> tuple[int, dt.datetime] | None:
    """Take the cursor for one batch (None when another process holds it)."""
    lease = now + LEASE
    async with db.transaction() as session:
        cursor = await session.get(RelayCursor, CURSOR)
        if cursor is None:  # the relay starts from now: the log's history is not replayed
            last = (await session.execute(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))).scalar()
            session.add(RelayCursor(name=CURSOR, last_id=last or 0, lease_until=lease, updated_at=now))
            return last or 0, lease
        taken = await session.execute(
            update(RelayCursor)
            .where(RelayCursor.name == CURSOR, (RelayCursor.lease_until.is_(None)) | (RelayCursor.lease_until < now))
            .values(lease_until=lease)
            .execution_options(synchronize_session=False)
        )
        if rowcount(taken) != 1:
            return None
        return cursor.last_id, lease


async def relay_once(db: Database, send, *, now: dt.datetime | None = None) -> int:
    """Send the next batch of audit rows as events with `send(list[dict])`; the number sent. The
    cursor moves only after Prefect took them; a failure leaves it for the next round."""
    now = now or utcnow()
    taken = await _lease(db, now)
    if taken is None:
        return 0
    last_id, lease = taken
    async with db.reads() as session:
        rows = list(
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(BATCH)
                )
            ).scalars()
        )
    events = [prefect_event(row) for row in rows if row.action in RELAYED]
    try:
        if events:
            await send(events)
    except BaseException:
        await _release(db, lease, moved_to=None)
        raise
    await _release(db, lease, moved_to=rows[-1].id if rows else None)
    return len(events)


async def _release(db: Database, lease: dt.datetime, *, moved_to: int | None) -> None:
    values: dict = {"lease_until": None, "updated_at": utcnow()}
    if moved_to is not None:
        values["last_id"] = moved_to
    async with db.transaction() as session:
        await session.execute(
            update(RelayCursor)
            .where(RelayCursor.name == CURSOR, RelayCursor.lease_until == lease)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


async def send_to_prefect(events: list[dict]) -> None:
    """POST the events to the Prefect server's events API (it stores an id once)."""
    from service.cycles import prefect_client

    async with prefect_client() as client:
        answer = await client._client.post("/events", json=events)
        answer.raise_for_status()
