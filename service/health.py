"""For ops: is the process alive (`/healthz`), can it do its work (`/readyz`), and what the
alert rules need (`/metrics`, Prometheus text format); `kehoach status` reads the same facts.

`/readyz` answers 503, naming what failed, when the database cannot be reached, its schema is
not at the code's migration, Prefect cannot be reached, the signing file cannot be read or
does not fit the plan, or the outbox or the wake queue is stuck (something due has waited
longer than `STUCK`). Every check has a short timeout: a hung database or Prefect makes the
answer 503, never a hung probe. A Zalo or SMS channel that is failing is not one of them (the
web still serves, and the email reaches the officials): `/metrics` shows it
(`kehoach_channel_failing`), and `kehoach status` names it and exits 1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
from dataclasses import dataclass

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select, text

from approvals.db import utcnow
from approvals.models import ApprovalRequest, Cycle, Decision, Wake
from approvals.signing.signers import signing_problems
from approvals.statuses import RequestStatus, WakeStatus
from notifications.channel_health import ChannelHealth, channel_health
from notifications.models import MessageStatus, OutboxMessage
from service.deps import App, AppState

router = APIRouter(include_in_schema=False)
STUCK = dt.timedelta(minutes=10)  # due work older than this means the queue's processes are not keeping up
CHECK_TIMEOUT = 3.0


@functools.lru_cache(maxsize=1)
def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    from service.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@dataclass(frozen=True)
class Facts:
    """What the database says about the queues and the work (one read transaction)."""

    revision: str | None
    outbox_queued: int
    outbox_oldest: dt.datetime | None  # the oldest message due and not sent
    outbox_failed: int
    wakes_queued: int
    wakes_oldest: dt.datetime | None
    wakes_parked: int
    cycles_attention: int
    open_requests: dict[tuple[str, str, str], int]  # (cycle kind, stage, status) -> requests
    overdue_requests: dict[tuple[str, str], int]  # (cycle kind, stage) -> open and past due
    decisions: dict[str, int]  # outcome -> decisions ever recorded
    channels: ChannelHealth  # Zalo and SMS: messages per channel and state, the channels failing


async def read_facts(app: AppState, now: dt.datetime) -> Facts:
    async with app.db.reads() as session:
        revision = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        queued, oldest = (
            await session.execute(
                select(func.count(), func.min(OutboxMessage.next_attempt_at)).where(
                    OutboxMessage.status == MessageStatus.queued.value
                )
            )
        ).one()
        failed = (
            await session.execute(select(func.count()).where(OutboxMessage.status == MessageStatus.failed.value))
        ).scalar_one()
        waking, wake_oldest = (
            await session.execute(
                select(func.count(), func.min(Wake.next_attempt_at)).where(Wake.status == WakeStatus.queued.value)
            )
        ).one()
        parked = (
            await session.execute(select(func.count()).where(Wake.status == WakeStatus.parked.value))
        ).scalar_one()
        attention = (
            await session.execute(select(func.count()).where(Cycle.attention.is_not(None), Cycle.finished_at.is_(None)))
        ).scalar_one()
        open_statuses = [s.value for s in RequestStatus if s.open]
        rows = await session.execute(
            select(Cycle.kind, ApprovalRequest.stage, ApprovalRequest.status, func.count())
            .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
            .where(ApprovalRequest.status.in_(open_statuses))
            .group_by(Cycle.kind, ApprovalRequest.stage, ApprovalRequest.status)
        )
        open_requests = {(kind, stage, status): count for kind, stage, status, count in rows}
        overdue = dict(
            ((kind, stage), count)
            for kind, stage, count in await session.execute(
                select(Cycle.kind, ApprovalRequest.stage, func.count())
                .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
                .where(ApprovalRequest.status.in_(open_statuses), ApprovalRequest.due_at < now)
                .group_by(Cycle.kind, ApprovalRequest.stage)
            )
        )
        decisions = dict(
            (await session.execute(select(Decision.outcome, func.count()).group_by(Decision.outcome))).all()
        )
        channels = await channel_health(session, now)
    return Facts(
        revision,
        queued,
        oldest,
        failed,
        waking,
        wake_oldest,
        parked,
        attention,
        open_requests,
        overdue,
        decisions,
        channels,
    )


async def prefect_reachable() -> str | None:
    """None when the configured Prefect server answers its health check, else why not."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    if not url:
        return "PREFECT_API_URL is not set"
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
            answer = await client.get(f"{url.rstrip('/')}/health")
        return None if answer.status_code == 200 else f"Prefect answered {answer.status_code}"
    except httpx.HTTPError as exc:
        return f"Prefect cannot be reached: {type(exc).__name__}"


async def checks(app: AppState) -> dict[str, str]:
    """Each check's answer: "ok", or what is wrong."""
    now = utcnow()
    found: dict[str, str] = {}
    try:
        facts = await asyncio.wait_for(read_facts(app, now), timeout=CHECK_TIMEOUT)
    except Exception as exc:
        found["database"] = f"cannot be read: {type(exc).__name__}"
    else:
        found["database"] = "ok"
        found["migrations"] = (
            "ok"
            if facts.revision == head_revision()
            else f"at {facts.revision}, the code needs {head_revision()}: run `kehoach db upgrade`"
        )
        found["outbox"] = (
            "ok"
            if facts.outbox_oldest is None or now - facts.outbox_oldest < STUCK
            else f"{facts.outbox_queued} email(s) due, the oldest since {facts.outbox_oldest:%Y-%m-%d %H:%M} UTC"
        )
        found["wakes"] = (
            "ok"
            if facts.wakes_oldest is None or now - facts.wakes_oldest < STUCK
            else f"{facts.wakes_queued} run(s) to resume, the oldest due since {facts.wakes_oldest:%Y-%m-%d %H:%M} UTC"
        )
    problem = await prefect_reachable()
    found["prefect"] = problem or "ok"
    signing = signing_problems(app.settings, app.plan, open_keys=False)  # the worker opens the keys at start
    found["signing"] = "; ".join(signing) or "ok"
    return found


@router.get("/healthz")
async def health():
    """The process lives and answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def ready(app: App):
    found = await checks(app)
    healthy = all(value == "ok" for value in found.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": found},
        status_code=200 if healthy else 503,
        headers={"Cache-Control": "no-store"},
    )


def _labels(**values: str) -> str:
    return (
        "{"
        + ",".join(
            f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
            for k, v in values.items()
        )
        + "}"
    )


def exposition(facts: Facts, now: dt.datetime) -> str:
    """The facts in Prometheus' text format (version 0.0.4)."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    age = (now - facts.outbox_oldest).total_seconds() if facts.outbox_oldest and facts.outbox_oldest < now else 0
    metric("kehoach_outbox_queued", "gauge", "Emails queued and not sent yet.", [("", facts.outbox_queued)])
    metric(
        "kehoach_outbox_oldest_due_seconds", "gauge", "How long the oldest due email has waited (0: none).", [("", age)]
    )
    metric(
        "kehoach_outbox_failed",
        "gauge",
        "Emails that could not be delivered (coordinators were told).",
        [("", facts.outbox_failed)],
    )
    wake_age = (now - facts.wakes_oldest).total_seconds() if facts.wakes_oldest and facts.wakes_oldest < now else 0
    metric("kehoach_resumes_pending", "gauge", "Runs to resume (wakes queued).", [("", facts.wakes_queued)])
    metric(
        "kehoach_resumes_oldest_due_seconds",
        "gauge",
        "How long the oldest due wake has waited (0: none).",
        [("", wake_age)],
    )
    metric(
        "kehoach_resumes_parked",
        "gauge",
        "Wakes that can never be delivered (their cycle needs a coordinator).",
        [("", facts.wakes_parked)],
    )
    metric(
        "kehoach_cycles_needing_attention",
        "gauge",
        "Cycles whose run stopped: a coordinator must restart them.",
        [("", facts.cycles_attention)],
    )
    metric(
        "kehoach_requests_open",
        "gauge",
        "Open steps (waiting for a submission or a decision).",
        [(_labels(cycle=k, stage=s, status=st), n) for (k, s, st), n in sorted(facts.open_requests.items())],
    )
    metric(
        "kehoach_requests_overdue",
        "gauge",
        "Open steps past their due time.",
        [(_labels(cycle=k, stage=s), n) for (k, s), n in sorted(facts.overdue_requests.items())],
    )
    metric(
        "kehoach_decisions_total",
        "counter",
        "Decisions recorded.",
        [(_labels(outcome=o), n) for o, n in sorted(facts.decisions.items())],
    )
    metric(
        "kehoach_channel_messages",
        "gauge",
        "Zalo and SMS messages by channel and state (sent; failed: refused for good, fell back to the next channel).",
        [(_labels(channel=c, status=st), n) for (c, st), n in sorted(facts.channels.messages.items())],
    )
    metric(
        "kehoach_channel_deliveries",
        "gauge",
        "Sent Zalo and SMS messages by what their provider reported: delivered; undelivered, or unconfirmed "
        "(no report in time): both fell back to the next channel.",
        [(_labels(channel=c, delivery=d), n) for (c, d), n in sorted(facts.channels.deliveries.items())],
    )
    metric(
        "kehoach_channel_failing",
        "gauge",
        "1 for a channel whose provider failed every message of the last hour (at least 3).",
        [(_labels(channel=f.channel), 1) for f in facts.channels.failing],
    )
    return "\n".join(lines) + "\n"


@router.get("/metrics")
async def metrics(app: App):
    now = utcnow()
    try:
        facts = await asyncio.wait_for(read_facts(app, now), timeout=CHECK_TIMEOUT)
    except Exception:
        return Response("# the database cannot be read\n", status_code=503, media_type="text/plain")
    return Response(exposition(facts, now), media_type="text/plain; version=0.0.4; charset=utf-8")
