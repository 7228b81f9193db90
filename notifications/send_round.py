"""One round of the dispatcher, pipelined: claim a batch (and the next one while the last
messages of this one go out), one worker per pooled SMTP connection writing and sending each
message, and the outcomes recorded in batches, fenced on the claim's lease (see
notifications.dispatcher for the rules that keep a message from going out twice)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from notifications.models import ClaimedMessage
from notifications.smtp import SmtpUnavailable

if TYPE_CHECKING:
    from notifications.dispatcher import Dispatcher

log = logging.getLogger("kehoach.dispatcher")


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | retry | failed | release
    error: str | None = None
    outage: bool = False  # the server was unreachable: not the message's fault


SENT = Outcome("sent")
RELEASE = Outcome("release")


@dataclass(frozen=True, eq=False)
class Batch:
    lease_until: dt.datetime  # as written by the claim: the fence of every later write
    deadline: float  # loop time after which none of its sends may still run


@dataclass(eq=False)
class Job:
    message: ClaimedMessage
    batch: Batch


class Stream:
    """Batch after batch: claims ahead of the senders, records behind them.

    `pool.size` workers each hold one connection and take message after message; when
    the queue runs low the next batch is claimed in the background; outcomes are
    written in the background, `flush_size` at a time or every `flush_interval`.
    Ends after a claim that found nothing (the outbox is drained for now: `exhausted`),
    after one batch (`once`), on `stop`, or when the server cannot be reached. A claim
    that found less than a full batch does not end it: while emails are being queued
    (a fan-out, a busy web service) the next claim picks up what arrived meanwhile,
    instead of the dispatcher sleeping its poll interval with work waiting."""

    def __init__(self, dispatcher: Dispatcher, *, stop: asyncio.Event | None, once: bool):
        self.dispatcher = dispatcher
        self.stop = stop
        self.once = once
        self.jobs: deque[Job] = deque()
        self.wake = asyncio.Event()
        self.claiming: asyncio.Task[None] | None = None
        self.exhausted = False
        self.outage: str | None = None
        self.pending: list[tuple[ClaimedMessage, Outcome, dt.datetime]] = []
        self.flushing: asyncio.Task[None] | None = None
        self.handled = 0
        self.low_water = max(2 * dispatcher.pool.size, dispatcher.batch_size // 2)

    @property
    def stopping(self) -> bool:
        return self.outage is not None or (self.stop is not None and self.stop.is_set())

    async def run(self) -> int:
        await self._claim()
        if not self.jobs:
            await self._flush_all()
            return self.handled
        ticker = asyncio.create_task(self._tick())
        workers = [asyncio.create_task(self._worker()) for _ in range(self.dispatcher.pool.size)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            ticker.cancel()
            if self.claiming is not None:
                await asyncio.gather(self.claiming, return_exceptions=True)
            # Not attempted: wait with back-off (server unreachable) or back to the queue (stopping).
            leftover = Outcome("retry", self.outage, outage=True) if self.outage else RELEASE
            self.pending.extend((job.message, leftover, job.batch.lease_until) for job in self.jobs)
            self.jobs.clear()
            await self._flush_all()
        return self.handled

    # ---------------------------------------------------------------- claiming

    async def _claim(self) -> None:
        dispatcher = self.dispatcher
        try:
            messages, lease = await dispatcher.claim()
        finally:
            self.wake.set()
        if not messages or self.once:
            self.exhausted = True  # drained for now (or one batch asked): no claim ahead
        if not messages:
            return
        self.handled += len(messages)
        loop = asyncio.get_running_loop()
        batch = Batch(lease, loop.time() + dispatcher.retry.lease_seconds - dispatcher.retry.lease_margin)
        self.jobs.extend(Job(message, batch) for message in messages)
        self.wake.set()

    async def _claim_ahead(self) -> None:
        try:
            await self._claim()
        except Exception:
            log.exception("claiming the next batch failed")
            self.exhausted = True
        finally:
            self.claiming = None
            self.wake.set()

    async def _next(self) -> Job | None:
        while not self.stopping:
            if len(self.jobs) <= self.low_water and not self.exhausted and self.claiming is None:
                self.claiming = asyncio.create_task(self._claim_ahead())
            if self.jobs:
                return self.jobs.popleft()
            if self.exhausted and self.claiming is None:
                return None
            self.wake.clear()
            await self.wake.wait()
        return None

    # ---------------------------------------------------------------- sending

    async def _worker(self) -> None:
        dispatcher = self.dispatcher
        loop = asyncio.get_running_loop()
        while (job := await self._next()) is not None:
            remaining = job.batch.deadline - loop.time()
            if remaining < min(dispatcher.smtp.timeout, dispatcher.retry.lease_seconds / 4):
                self._note(job, RELEASE)  # too close to the end of its lease to start
                continue
            # Written here, just before it goes out, not a whole batch at once after the claim:
            # the other connections' replies are not kept waiting behind a batch's worth of work.
            try:
                data = dispatcher.serialize(job.message)
            except Exception as exc:  # the message itself is broken: retrying cannot help
                log.error("cannot build %s: %s", job.message.message_id, exc)
                self._note(job, Outcome("failed", f"cannot build the message: {exc}"))
                continue
            try:
                async with asyncio.timeout(remaining):
                    outcome = await dispatcher.send(job, data)
            except SmtpUnavailable as exc:
                log.warning("cannot connect to SMTP %s:%s: %s", dispatcher.smtp.host, dispatcher.smtp.port, exc)
                if self.outage is None:
                    self.outage = str(exc)
                self.jobs.appendleft(job)
                self.wake.set()
                return
            except TimeoutError:  # cut off at the lease deadline: it may or may not have gone out
                outcome = Outcome("retry", "timeout: cut off before the lease ran out")
            self._note(job, outcome)

    # ---------------------------------------------------------------- recording

    def _note(self, job: Job, outcome: Outcome) -> None:
        self.pending.append((job.message, outcome, job.batch.lease_until))
        if len(self.pending) >= self.dispatcher.flush_size and self.flushing is None:
            self.flushing = asyncio.create_task(self._flush_in_background())

    async def _flush(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        try:
            await self.dispatcher.record_all(pending)
        except BaseException:
            self.pending[:0] = pending  # try again at the next flush
            raise

    async def _flush_in_background(self) -> None:
        try:
            await self._flush()
        except Exception as exc:
            log.warning("recording outcomes failed, will try again: %s", exc)
        finally:
            self.flushing = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.dispatcher.flush_interval)
            if self.flushing is None:
                self.flushing = asyncio.create_task(self._flush_in_background())

    async def _flush_all(self) -> None:
        for attempt in range(4):
            if self.flushing is not None:
                await asyncio.gather(self.flushing, return_exceptions=True)
            try:
                await self._flush()
                return
            except Exception:
                if attempt == 3:
                    raise
                log.warning("recording outcomes failed, trying again", exc_info=True)
                await asyncio.sleep(0.5 * (attempt + 1))
