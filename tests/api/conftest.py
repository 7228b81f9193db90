"""Fixtures of the API and dashboard tests: the app in process (its real lifespan) on the
shared sandbox database, API accounts, and requests opened straight in the database."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import delete, select, update

from approvals.config import Settings
from approvals.db import utcnow
from approvals.models import ApiAccount, ApprovalRequest, Assignment, Cycle, Delegation, LinkFailure
from approvals.people.accounts import AccountRole, create_account
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.tokens import derive_token
from notifications.models import OutboxMessage
from service.app import create_app
from tests.support.fake_remote_signer import fake_remote_signer  # noqa: F401  (a fixture: the remote signing provider)


@pytest.fixture(autouse=True)
async def leave_the_sandbox_as_found(database):
    """The sandbox is shared by the whole session: the emails a test queued are deleted (a
    dispatcher test must find nothing else due), the delegations it made are revoked (they
    would route other tests' requests) and the invalid links it followed are forgotten (they
    would count towards the next test's failed-link limit: every test here is one client)."""
    async with database.sessions() as session:
        before = set((await session.execute(select(OutboxMessage.id))).scalars())
    started = utcnow()
    yield
    async with database.transaction() as session:
        queued = set((await session.execute(select(OutboxMessage.id))).scalars()) - before
        if queued:
            await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(queued)))
        await session.execute(
            update(Delegation)
            .where(Delegation.created_at >= started, Delegation.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await session.execute(delete(LinkFailure).where(LinkFailure.at >= started))


@pytest.fixture
def settings(sandbox, link_secret, tmp_path) -> Settings:
    # No Prefect server here: the service starts no event cycle (the end-to-end tests do), and
    # no reconciler works the shared sandbox behind a test's back (the wakes other tests left
    # would be parked and alert the coordinators while a test compares the outbox before and after).
    return Settings(
        database_url=sandbox.url,
        link_secret=link_secret,
        data_dir=tmp_path,
        public_base_url="http://kehoach.test",
        event_cycle_deployment="",
        problem_cycle_deployment="",
        reconcile=False,
    )


@pytest.fixture
async def app(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):  # sets app.state.kehoach as `kehoach web` does
        yield app


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kehoach.test") as c:
        yield c


@dataclass(frozen=True)
class Accounts:
    coordinator: str
    coordinator_name: str
    viewer: str
    disabled: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def as_coordinator(self) -> dict[str, str]:
        return self.auth(self.coordinator)

    @property
    def as_viewer(self) -> dict[str, str]:
        return self.auth(self.viewer)


async def make_accounts(database) -> Accounts:
    suffix = uuid.uuid4().hex[:8]
    async with database.transaction() as session:
        _, coordinator = await create_account(
            session, name=f"lan.vt-{suffix}", role=AccountRole.coordinator, by="test", now=utcnow()
        )
        _, viewer = await create_account(
            session, name=f"viewer-{suffix}", role=AccountRole.viewer, by="test", now=utcnow()
        )
        gone, disabled = await create_account(
            session, name=f"gone-{suffix}", role=AccountRole.coordinator, by="test", now=utcnow()
        )
        await session.execute(update(ApiAccount).where(ApiAccount.id == gone.id).values(disabled_at=utcnow()))
    return Accounts(coordinator, f"lan.vt-{suffix}", viewer, disabled)


@pytest.fixture
async def accounts(database) -> Accounts:
    return await make_accounts(database)


@dataclass(frozen=True)
class Opened:
    request_id: uuid.UUID
    cycle_id: uuid.UUID
    assignments: dict[str, uuid.UUID]  # official id -> assignment id


async def open_request(
    database,
    settings,
    *,
    cycle_kind: str = "problem_escalation",
    stage_id: str = "ppc_resolution",
    period: str | None = None,
    days_late: int = 0,
    starts_on: dt.date | None = None,
    subject: str = "",
    now: dt.datetime | None = None,
    cycle: Cycle | None = None,
) -> Opened:
    """A stage's request opened as the flow's task opens it (no flow waits on it), in `cycle` or
    a new cycle of its own; with `days_late`, its due time has passed that many days ago."""
    now = now or utcnow()
    async with database.transaction() as session:
        cycle = cycle or await steps.get_or_create_cycle(
            session, kind=cycle_kind, period=period or f"t-{uuid.uuid4().hex[:12]}", starts_on=starts_on or now.date()
        )
        opened = await steps.open_request(
            session,
            plan=load_plan(settings.plan_file),
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id=stage_id,
            subject=subject,
            waiter_ref=None,
            link_ttl=dt.timedelta(days=30),
            now=now,
        )
        if days_late:
            await session.execute(
                update(ApprovalRequest)
                .where(ApprovalRequest.id == opened.request.id)
                .values(due_at=now - dt.timedelta(days=days_late))
            )
    return Opened(opened.request.id, cycle.id, {n.official.id: n.assignment.id for n in opened.new_assignments})


async def escalate(client, accounts, database, opened: Opened) -> Opened:
    """The coordinator's escalate action on an open step (what the sweep does at the due time):
    the stage's superior joins its approvers. A PPC resolution step (`open_request`'s default)
    is decided by the PPC vice-chair alone; escalated, the PPC chair is asked too and either of
    them decides it (policy any). Returns the request with every assignment it now has."""
    response = await client.post(f"/api/v1/requests/{opened.request_id}/escalate", headers=accounts.as_coordinator)
    assert response.status_code == 200, response.text
    async with database.sessions() as session:
        assignments = dict(
            (
                await session.execute(
                    select(Assignment.official_id, Assignment.id).where(Assignment.request_id == opened.request_id)
                )
            ).all()
        )
    assert set(assignments) == set(opened.assignments) | set(response.json()["notified"]), assignments
    return Opened(opened.request_id, opened.cycle_id, assignments)


async def live_token(database, settings, assignment_id: uuid.UUID) -> str:
    async with database.sessions() as session:
        generation = (
            await session.execute(select(Assignment.token_generation).where(Assignment.id == assignment_id))
        ).scalar_one()
    return derive_token(settings.link_secret_bytes(), assignment_id, generation)


async def approver_token(database, settings, cycle_id, stage_id: str, subject: str = "") -> str:
    """The live decision link of the one approver still to decide a branch (`subject`) of a stage."""
    async with database.sessions() as session:
        assignment = (
            await session.execute(
                select(Assignment)
                .join(ApprovalRequest, ApprovalRequest.id == Assignment.request_id)
                .where(
                    ApprovalRequest.cycle_id == cycle_id,
                    ApprovalRequest.stage == stage_id,
                    ApprovalRequest.subject == subject,
                    Assignment.status == "pending",
                )
            )
        ).scalar_one()
    return await live_token(database, settings, assignment.id)
