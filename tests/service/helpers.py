"""What the service tests share: the link from a real email, database snapshots, requests
opened straight in the stack's database, clients with their own loopback address, a browser."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import func, or_, select, update

from approvals import coordination
from approvals.config import PACKAGED_PLAN
from approvals.db import Database, utcnow
from approvals.models import ApprovalRequest, Assignment, AuditEvent, Cycle, CycleStage, Decision
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.tokens import derive_token, hash_token
from notifications.models import OutboxMessage

DIRECTOR = "giamdoc.svhttdl@lang-son.example"  # stage 1 (the press orientation): the DCST's since 2025
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/a/[A-Za-z0-9_-]+)")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Cycles run by the real flow ---------------------------------------------------------


def open_cycle(stack, year: int) -> tuple[uuid.UUID, str]:
    """Start the year's annual cycle, the press officer submits the orientation (stage 1); return
    the run id and the link from the email the director then received."""
    from tests.support.officials import Inbox, submit_orientation

    run_id = stack.start_cycle(year)
    state = stack.wait_for_state(run_id, {"Suspended"})
    assert state.type.value == "PAUSED" and state.name == "Suspended"
    submit_orientation(Inbox(stack, year))
    email = stack.smtp.wait_for(
        lambda r: DIRECTOR in r.envelope_to and f"{year}" in r.subject and "Cần phê duyệt" in r.subject
    )
    links = set(LINK.findall(email.text))
    assert len(links) == 1, email.text
    return run_id, links.pop()


def cycle_snapshot(stack, year: int) -> dict:
    """Everything a link could change, for one year's annual cycle at its stage 1."""
    with stack.reading() as conn:
        cycle_id = conn.execute(select(Cycle.id).where(Cycle.kind == "annual", Cycle.period == str(year))).scalar_one()
        request_id = conn.execute(
            select(ApprovalRequest.id).where(
                ApprovalRequest.cycle_id == cycle_id, ApprovalRequest.stage == "dic_direction"
            )
        ).scalar_one()
    snap = request_snapshot(stack, request_id)
    with stack.reading() as conn:
        snap["stage"] = conn.execute(
            select(CycleStage.status).where(CycleStage.cycle_id == cycle_id, CycleStage.stage == "dic_direction")
        ).scalar_one()
    return snap


def request_snapshot(stack, request_id) -> dict:
    """A request's status, its assignments (status, token hash), its decisions, and how many audit
    rows and emails concern it: an audit row about the request, its cycle, one of the cycle's
    stages or one of its assignments; an email whose key names one of those or one of its
    decisions (a receipt). Not the whole audit log and outbox: the stack's roles go on working
    for the other tests' cycles meanwhile (a reminder come due, an alert), which is not this
    request's doing (run 27: two audit rows and an email during a scanner's 1,000 fetches)."""
    with stack.reading() as conn:
        request = conn.execute(select(ApprovalRequest).where(ApprovalRequest.id == request_id)).one()
        assignments = list(conn.execute(select(Assignment).where(Assignment.request_id == request_id)))
        decisions = list(conn.execute(select(Decision.id).where(Decision.request_id == request_id)).scalars())
        stages = conn.execute(select(CycleStage.id).where(CycleStage.cycle_id == request.cycle_id)).scalars()
        about = {str(request_id), str(request.cycle_id), *map(str, stages), *(str(a.id) for a in assignments)}
        keys = [*about, *map(str, decisions)]
        return {
            "request_status": request.status,
            "decided_at": request.decided_at,
            "assignments": sorted((str(a.id), a.status, a.token_hash, a.token_generation) for a in assignments),
            "decisions": len(decisions),
            "audit_rows": conn.execute(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.entity_id.in_(about))
            ).scalar_one(),
            "outbox_rows": conn.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(or_(*(OutboxMessage.idempotency_key.contains(key, autoescape=True) for key in keys)))
            ).scalar_one(),
        }


def decisions_of(stack, request_id) -> list[tuple[str, str, str]]:
    with stack.reading() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                select(Decision.official_id, Decision.outcome, Decision.comment).where(
                    Decision.request_id == request_id
                )
            )
        ]


# Requests opened straight in the database (no flow waits on them) --------------------


@dataclass
class DirectRequest:
    request_id: uuid.UUID
    period: str
    tokens: dict[str, str]  # official id -> token
    base_url: str

    def link(self, official_id: str) -> str:
        return f"{self.base_url}/a/{self.tokens[official_id]}"


def open_direct_request(
    stack,
    period: str,
    *,
    extra: tuple[tuple[str, str], ...] = (),
    policy: str | None = None,
    cycle_kind: str = "problem_escalation",
    stage_id: str = "ppc_resolution",
    escalated: bool = False,
) -> DirectRequest:
    """Open a stage's request the way the flow's task does (assignments, token hashes, audit
    row), without a flow run waiting on it; `extra` adds assignments (official id, role).
    With `escalated`, a coordinator escalates it at once (as the sweep does at the due time):
    the stage's superior joins its approvers. A PPC resolution step (the default) is decided by
    the PPC vice-chair alone; escalated, the PPC chair is asked too and either decides."""
    secret = stack.env["KEHOACH_LINK_SECRET"].encode()
    plan = load_plan(PACKAGED_PLAN)

    async def run() -> DirectRequest:
        db = Database(stack.sandbox.url)
        try:
            async with db.transaction() as session:
                now = utcnow()
                cycle = await steps.get_or_create_cycle(session, kind=cycle_kind, period=period, starts_on=now.date())
                opened = await steps.open_request(
                    session,
                    plan=plan,
                    secret=secret,
                    cycle=cycle,
                    stage_id=stage_id,
                    waiter_ref=None,
                    link_ttl=dt.timedelta(days=30),
                    now=now,
                )
                assert opened.new_assignments, f"period {period} was used before"
                tokens = {new.official.id: derive_token(secret, new.assignment.id, 1) for new in opened.new_assignments}
                if escalated:
                    acted = await coordination.escalate(
                        session,
                        plan=plan,
                        secret=secret,
                        request_id=opened.request.id,
                        by="api:test",
                        now=now,
                        link_ttl=dt.timedelta(days=30),
                    )
                    assert acted.notify, "nobody to escalate to"
                    tokens |= {
                        new.official.id: derive_token(secret, new.assignment.id, new.assignment.token_generation)
                        for new in acted.notify
                    }
                for official_id, role in extra:
                    assignment_id = uuid.uuid4()
                    token = derive_token(secret, assignment_id, 1)
                    session.add(
                        Assignment(
                            id=assignment_id,
                            request_id=opened.request.id,
                            official_id=official_id,
                            role=role,
                            token_hash=hash_token(token),
                            token_generation=1,
                            expires_at=now + dt.timedelta(days=30),
                            created_at=now,
                        )
                    )
                    tokens[official_id] = token
                if policy:
                    await session.execute(
                        update(ApprovalRequest).where(ApprovalRequest.id == opened.request.id).values(policy=policy)
                    )
                return DirectRequest(opened.request.id, period, tokens, stack.base_url)
        finally:
            await db.dispose()

    return asyncio.run(run())


# Clients ---------------------------------------------------------------------------------


def client_from(address: str, **kwargs) -> httpx.Client:
    """A client whose requests come from another loopback address (127.0.0.0/8), so the web
    process sees another client: failed-link limits are per client address."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30, **kwargs)


# Browser ------------------------------------------------------------------------------------


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
