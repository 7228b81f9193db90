"""A director who signs the issued report on the phone, at a remote signing provider (VNPT
SmartCA and the like): the run that issues the report asks, and waits suspended, holding no
process, until the director confirms or the request lapses.

- `signed_by_remote_director`, from the issue task: the first time, the report is made ready for
  the signature (`approvals.signing.issued_report.director_asked_remotely`), kept in
  `remote_signature` with our transaction id, and sent to the provider; the task answers None
  and the run waits. Once the signature came back, it finishes the signature from what was kept
  (pyHanko's interrupted signing) and the issue goes on: number, seal, emails.
- `poll_remote_signatures`, from every web process's loop and from the sweep: asks the provider
  about each request that waits, and once it is answered (signed, refused, expired) wakes the run.
  Any number of pollers may run at once: each answer is recorded by a compare-and-set on the
  request's status, and the wake is queued in the same transaction (one queued wake per stage).

A request refused or lapsed is told once: the issue task raises (the run fails and the
coordinators hear of it, `flows.stages.report_failure`); when the issue is tried again (the
cycle restarted) a new request is asked. Our transaction id goes to the provider, which refuses a
second request under it, so a task that died between asking and recording never makes the phone
ask twice."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from approvals import audit
from approvals.db import Database, rowcount, utcnow
from approvals.errors import Refused, Unavailable
from approvals.report_models import RemoteSignature
from approvals.routing.stages import WakeReason, enqueue_wake
from approvals.signing.errors import RemoteSignatureLapsed, SigningRefused
from approvals.signing.issued_report import (
    SignatureMade,
    director_asked_remotely,
    director_signed_remotely,
    remote_director,
)
from approvals.signing.remote import Lapsed, Pending, PendingRemoteSignature, RemoteSigningClient, Signed
from approvals.signing.signers import Signers
from approvals.statuses import RemoteSignatureStatus as Status

if TYPE_CHECKING:
    from approvals.consolidated.pdf_file import PdfLayout

log = logging.getLogger("kehoach.signing")
BATCH = 50
POLL_EVERY = dt.timedelta(seconds=5)  # a director confirms within a minute or two: the run goes on soon after
MAX_POLL_BACKOFF = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Asking:
    """What the request is for: the cycle's consolidation stage, its approved round, who signs."""

    cycle_id: uuid.UUID
    stage: str
    request_id: uuid.UUID
    official_id: str
    description: str  # shown on the director's phone
    expires_after: dt.timedelta


ClientOf = Callable[..., RemoteSigningClient]


def _client_of(signers: Signers, official_id: str) -> RemoteSigningClient:
    config = remote_director(signers, official_id)
    if config is None:
        raise SigningRefused(f"{official_id} no longer signs remotely in the signing file")
    return RemoteSigningClient.of(config, signers.environ())


async def signed_by_remote_director(
    db: Database,
    asking: Asking,
    *,
    unsigned: Callable[[], Awaitable[tuple[bytes, PdfLayout]]],
    signers: Signers,
    client_of: ClientOf = _client_of,
) -> tuple[bytes, SignatureMade] | None:
    """The report signed by its director, once they confirmed on the phone; None while the
    request waits (asked now, or before). RemoteSignatureLapsed or SigningRefused, once, for a
    request refused, expired or not the director's signature; the next call asks again."""
    row = await _latest(db, asking.cycle_id)
    if row is None or (row.status == Status.lapsed.value and row.told_at is not None):
        row = await _ask(db, asking, unsigned=unsigned, signers=signers, client_of=client_of)
    if row.status == Status.awaiting.value:
        if row.submitted_at is None:
            await _submit(db, row, asking, signers=signers, client_of=client_of)
        return None
    if row.status == Status.signed.value and row.signature is not None:
        pending = PendingRemoteSignature.from_json(row.state)
        try:
            return await director_signed_remotely(
                pending, row.signature, signers=signers, official_id=asking.official_id
            )
        except SigningRefused as error:  # not the director's signature, or the certificate lapsed since
            await _lapse(db, row.id, f"{error}", told=True)
            raise
    await _lapse(db, row.id, row.detail, told=True)
    raise RemoteSignatureLapsed(
        f"the director's signature of the report was not given: {row.detail}; "
        "restart the cycle to ask the director again"
    )


async def _latest(db: Database, cycle_id: uuid.UUID) -> RemoteSignature | None:
    async with db.reads() as session:
        return (
            await session.execute(
                select(RemoteSignature)
                .where(RemoteSignature.cycle_id == cycle_id)
                .order_by(RemoteSignature.requested_at.desc())
                .limit(1)
            )
        ).scalar()


async def _ask(
    db: Database,
    asking: Asking,
    *,
    unsigned: Callable[[], Awaitable[tuple[bytes, PdfLayout]]],
    signers: Signers,
    client_of: ClientOf,
) -> RemoteSignature:
    """A new request, recorded before the provider hears of it (under our transaction id)."""
    pdf, layout = await unsigned()
    async with client_of(signers, asking.official_id) as client:
        pending = await director_asked_remotely(
            pdf, layout, signers=signers, official_id=asking.official_id, client=client
        )
    now = utcnow()
    row = RemoteSignature(
        id=uuid.uuid4(),
        cycle_id=asking.cycle_id,
        stage=asking.stage,
        request_id=asking.request_id,
        signer=asking.official_id,
        transaction_id=f"kehoach-{uuid.uuid4().hex}",
        state=pending.to_json(),
        status=Status.awaiting.value,
        requested_at=now,
        expires_at=now + asking.expires_after,
        next_poll_at=now,
        polls=0,
        detail="",
    )
    try:
        async with db.transaction() as session:
            session.add(row)
    except IntegrityError:  # another run asked meanwhile (one awaiting request per cycle): that one
        found = await _latest(db, asking.cycle_id)
        if found is None:
            raise
        return found
    return row


async def _submit(db: Database, row: RemoteSignature, asking: Asking, *, signers: Signers, client_of: ClientOf) -> None:
    """Send the recorded request to the provider (again, harmlessly, after a task died halfway)."""
    pending = PendingRemoteSignature.from_json(row.state)
    try:
        config = remote_director(signers, asking.official_id)
        if config is None:
            raise SigningRefused(f"{asking.official_id} no longer signs remotely in the signing file")
        async with client_of(signers, asking.official_id) as client:
            await client.submit(
                config.user_id,
                pending.to_be_signed,
                transaction_id=row.transaction_id,
                description=asking.description,
                serial_number=config.serial_number,
            )
    except Refused as error:  # our account, the user or the certificate refused: a person must act
        await _lapse(db, row.id, str(error), told=True)
        raise
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            update(RemoteSignature)
            .where(RemoteSignature.id == row.id, RemoteSignature.submitted_at.is_(None))
            .values(submitted_at=now, next_poll_at=now)
        )
        await audit.append(
            session,
            actor=asking.official_id,
            action="report.signature_requested",
            entity="approval_request",
            entity_id=str(asking.request_id),
            data={
                "transaction_id": row.transaction_id,
                "signer": asking.official_id,
                "fingerprint": hashlib.sha256(pending.certificate).hexdigest(),
                "expires_at": row.expires_at.isoformat(),
            },
        )
    log.info(
        "asked %s to sign the report of cycle %s on the phone (%s)",
        asking.official_id,
        row.cycle_id,
        row.transaction_id,
    )


async def _lapse(db: Database, row_id: uuid.UUID, detail: str, *, told: bool) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(RemoteSignature)
            .where(RemoteSignature.id == row_id)
            .values(status=Status.lapsed.value, detail=detail, told_at=utcnow() if told else None)
        )


# The pollers ---------------------------------------------------------------------------------


async def poll_remote_signatures(
    db: Database,
    *,
    signers: Callable[[], Signers],
    now: dt.datetime | None = None,
    client_of: ClientOf = _client_of,
) -> list[str]:
    """Ask the provider about each request whose poll is due; record each answer and wake its
    run. The transaction ids this call recorded answered. `signers` is called only when a
    request waits."""
    now = now or utcnow()
    async with db.reads() as session:
        due = list(
            (
                await session.execute(
                    select(RemoteSignature)
                    .where(
                        RemoteSignature.status == Status.awaiting.value,
                        RemoteSignature.submitted_at.is_not(None),
                        RemoteSignature.next_poll_at <= now,
                    )
                    .order_by(RemoteSignature.next_poll_at)
                    .limit(BATCH)
                )
            ).scalars()
        )
    if not due:
        return []
    configured = signers()
    answered: list[str] = []
    for row in due:
        outcome = await _ask_provider(row, configured, client_of, now)
        if outcome is None:
            await _poll_later(db, row, now, failed=True)
        elif isinstance(outcome, Pending):
            await _poll_later(db, row, now, failed=False)
        elif await _answered(db, row, outcome, now):
            answered.append(row.transaction_id)
    return answered


async def _ask_provider(
    row: RemoteSignature, signers: Signers, client_of: ClientOf, now: dt.datetime
) -> Pending | Signed | Lapsed | None:
    """The provider's answer; None when it cannot be asked now (down, hung, failing)."""
    if now >= row.expires_at:
        minutes = round((row.expires_at - row.requested_at).total_seconds() / 60)
        return Lapsed(f"the director did not confirm on the phone within {minutes} minutes")
    try:
        async with client_of(signers, row.signer) as client:
            return await client.status(row.transaction_id)
    except Unavailable as error:
        log.warning("remote signature %s: %s", row.transaction_id, error)
        return None
    except Refused as error:  # the provider does not know the request, or refuses us: it will not come
        return Lapsed(str(error))


async def _poll_later(db: Database, row: RemoteSignature, now: dt.datetime, *, failed: bool) -> None:
    wait = min(MAX_POLL_BACKOFF, POLL_EVERY * 2 ** min(row.polls, 8)) if failed else POLL_EVERY
    async with db.transaction() as session:
        await session.execute(
            update(RemoteSignature)
            .where(RemoteSignature.id == row.id, RemoteSignature.status == Status.awaiting.value)
            .values(polls=RemoteSignature.polls + 1, next_poll_at=now + wait)
        )


async def _answered(db: Database, row: RemoteSignature, outcome: Signed | Lapsed, now: dt.datetime) -> bool:
    values = (
        dict(status=Status.signed.value, signature=outcome.signature, detail="")
        if isinstance(outcome, Signed)
        else dict(status=Status.lapsed.value, detail=outcome.reason)
    )
    async with db.transaction() as session:
        changed = await session.execute(
            update(RemoteSignature)
            .where(RemoteSignature.id == row.id, RemoteSignature.status == Status.awaiting.value)
            .values(answered_at=now, polls=RemoteSignature.polls + 1, **values)
        )
        if rowcount(changed) != 1:  # another poller recorded it first
            return False
        await enqueue_wake(
            session, cycle_id=row.cycle_id, stage=row.stage, reason=WakeReason.signature_answered, now=now
        )
    log.info("remote signature %s: %s", row.transaction_id, values["status"])
    return True
