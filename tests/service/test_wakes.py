"""Delivering wakes and watching runs, against a real Prefect server (flow runs put in the
states a cycle's run goes through): a run waiting at the stage is resumed; one waiting
elsewhere is left alone; one still on its way is tried again soon; one that is over, or gone,
parks the wake and marks its cycle as needing attention, with one alert; Prefect out of reach
keeps the wake queued with back-off. A run that said it was working and went silent is marked
crashed in Prefect, and its cycle needs attention, once."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Completed, Paused, Running
from sqlalchemy import delete, select, update

from approvals.config import Settings
from approvals.db import utcnow
from approvals.models import Cycle, Wake
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.stages import ANY_STAGE, WakeReason, enqueue_wake
from notifications.models import OutboxMessage
from notifications.render import Renderer
from service.resume import Resumer


@flow(name="wake-test-cycle")
def _cycle_run() -> None:  # never run: only its flow runs' states are set
    pass


# The runs here have no deployment, so they are paused in place (a cycle's run is suspended,
# which Prefect would reschedule on its deployment); the pause key is what the delivery reads.


@pytest.fixture
def prefect_api(prefect_server):
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server.api_url


@pytest.fixture
def settings(sandbox, link_secret, tmp_path) -> Settings:
    return Settings(
        database_url=sandbox.url,
        link_secret=link_secret,
        data_dir=tmp_path,
        public_base_url="http://kehoach.test",
        resume_timeout=20,
    )


@pytest.fixture(autouse=True)
async def forget_alerts(database):
    """The coordinators' alerts a test here queues are its own leftovers: in the worker's shared
    outbox they would be due to the next test that runs a dispatcher (tests/notifications)."""
    async with database.sessions() as session:
        before = set((await session.execute(select(OutboxMessage.id))).scalars())
    yield
    async with database.transaction() as session:
        queued = set((await session.execute(select(OutboxMessage.id))).scalars()) - before
        if queued:
            await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(queued)))


@pytest.fixture
def resumer(database, settings) -> Resumer:
    plan = load_plan(settings.plan_file)
    return Resumer(database, plan=plan, settings=settings, renderer=Renderer())


async def _run_in(state) -> uuid.UUID:
    async with get_client() as client:
        run = await client.create_flow_run(_cycle_run, parameters={})
        await client.set_flow_run_state(run.id, state, force=True)
        return run.id


async def _state(run_id: uuid.UUID):
    async with get_client() as client:
        return (await client.read_flow_run(run_id)).state


async def _cycle_with_wake(database, run_id: uuid.UUID | None, stage: str = "dic_direction") -> uuid.UUID:
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"w-{uuid.uuid4().hex[:12]}", starts_on=dt.date(2026, 1, 15)
        )
        cycle.run_id, cycle.run_state = (str(run_id) if run_id else None), "waiting"
        await session.flush()
        await enqueue_wake(session, cycle_id=cycle.id, stage=stage, reason=WakeReason.stage_settled, now=utcnow())
    return cycle.id


async def _wake(database, cycle_id) -> Wake:
    async with database.sessions() as session:
        (wake,) = (await session.execute(select(Wake).where(Wake.cycle_id == cycle_id))).scalars()
        return wake


async def _deliver(database, resumer, cycle_id) -> Wake:
    """Deliver due wakes until this cycle's has been tried (other tests' wakes may be due too)."""
    for _ in range(20):
        before = (await _wake(database, cycle_id)).attempts
        await resumer.deliver_once()
        wake = await _wake(database, cycle_id)
        if wake.attempts > before:
            return wake
    raise AssertionError("the wake was never claimed")


async def _alerts(database, cycle_id) -> list[OutboxMessage]:
    async with database.sessions() as session:
        return [
            m
            for m in (await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "attention"))).scalars()
            if str(cycle_id) in m.idempotency_key
        ]


async def test_a_run_waiting_at_the_stage_is_resumed(database, resumer, prefect_api):
    run_id = await _run_in(Paused(pause_key="stage:dic_direction:3f2a"))
    cycle_id = await _cycle_with_wake(database, run_id)
    wake = await _deliver(database, resumer, cycle_id)
    assert (wake.status, wake.run_id, wake.attempts) == ("done", str(run_id), 1), wake.last_error
    assert not (await _state(run_id)).is_paused()  # resumed: Prefect takes it from here


async def test_a_cancelled_cycles_wake_resumes_the_run_wherever_it_waits(database, resumer, prefect_api):
    run_id = await _run_in(Paused(pause_key="stage:annual_report:77aa"))
    cycle_id = await _cycle_with_wake(database, run_id, stage=ANY_STAGE)
    assert (await _deliver(database, resumer, cycle_id)).status == "done"
    assert not (await _state(run_id)).is_paused()


async def test_a_run_waiting_at_another_stage_is_left_alone(database, resumer, prefect_api):
    run_id = await _run_in(Paused(pause_key="stage:materials:9c1d"))
    cycle_id = await _cycle_with_wake(database, run_id, stage="dic_direction")
    wake = await _deliver(database, resumer, cycle_id)
    assert wake.status == "done" and "waits elsewhere" in wake.last_error
    assert (await _state(run_id)).is_paused()


async def test_a_run_on_its_way_to_its_wait_is_tried_again_soon(database, resumer, prefect_api):
    run_id = await _run_in(Running())
    cycle_id = await _cycle_with_wake(database, run_id)
    wake = await _deliver(database, resumer, cycle_id)
    assert (wake.status, wake.lease_until, wake.attempts) == ("queued", None, 1)
    assert wake.next_attempt_at < utcnow() + dt.timedelta(seconds=1)  # soon: 0.5 s, not Prefect-down back-off
    assert "not waiting yet" in wake.last_error


async def test_a_run_that_is_over_while_its_cycle_is_not_parks_the_wake_and_tells_the_coordinators(
    database, resumer, prefect_api
):
    run_id = await _run_in(Completed())
    cycle_id = await _cycle_with_wake(database, run_id)
    wake = await _deliver(database, resumer, cycle_id)
    assert wake.status == "parked"
    async with database.sessions() as session:
        cycle = await session.get(Cycle, cycle_id)
    assert cycle.attention == "run_finished_open" and str(run_id) in cycle.attention_detail
    (alert,) = await _alerts(database, cycle_id)
    assert alert.recipients[0]["email"] == "dieuphoi.skhcn@lang-son.example"
    assert alert.subject.startswith("[Needs attention] The cycle's run ended before the cycle did")

    async with database.transaction() as session:  # another wake of the same cycle: told once
        await session.execute(delete(Wake).where(Wake.cycle_id == cycle_id))
        await enqueue_wake(session, cycle_id=cycle_id, stage="materials", reason=WakeReason.stage_settled, now=utcnow())
    assert (await _deliver(database, resumer, cycle_id)).status == "parked"
    assert len(await _alerts(database, cycle_id)) == 1


async def test_a_run_gone_from_prefect_parks_the_wake(database, resumer, prefect_api):
    cycle_id = await _cycle_with_wake(database, uuid.uuid4())
    assert (await _deliver(database, resumer, cycle_id)).status == "parked"
    async with database.sessions() as session:
        assert (await session.get(Cycle, cycle_id)).attention == "run_missing"


async def test_prefect_out_of_reach_keeps_the_wake_queued_with_back_off(database, resumer, prefect_api):
    run_id = await _run_in(Paused(pause_key="stage:dic_direction:0001"))
    cycle_id = await _cycle_with_wake(database, run_id)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # nothing listens there
        first = await _deliver(database, resumer, cycle_id)
        async with database.transaction() as session:
            await session.execute(update(Wake).where(Wake.id == first.id).values(next_attempt_at=utcnow()))
        second = await _deliver(database, resumer, cycle_id)
    assert (first.status, second.status) == ("queued", "queued")
    assert "could not reach Prefect" in second.last_error
    # It backs off: the second try waits longer than the first did (2 s, then 4 s).
    assert second.attempts == 2 and second.next_attempt_at - first.next_attempt_at > dt.timedelta(seconds=1.5)
    assert (await _state(run_id)).is_paused()
    async with database.transaction() as session:  # Prefect is back: the same wake goes through
        await session.execute(update(Wake).where(Wake.id == first.id).values(next_attempt_at=utcnow()))
    assert (await _deliver(database, resumer, cycle_id)).status == "done"
    assert not (await _state(run_id)).is_paused()


async def test_a_run_silent_while_working_is_marked_crashed_once(database, resumer, prefect_api):
    run_id = await _run_in(Running())
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"h-{uuid.uuid4().hex[:12]}", starts_on=dt.date(2026, 1, 15)
        )
        cycle.run_id, cycle.run_state, cycle.heartbeat_at = str(run_id), "running", utcnow() - dt.timedelta(hours=1)
    cycle_id = cycle.id
    assert await resumer.watch_runs() >= 1
    async with database.sessions() as session:
        cycle = await session.get(Cycle, cycle_id)
    assert cycle.attention == "run_crashed" and "no heartbeat" in cycle.attention_detail
    assert (await _state(run_id)).is_crashed()
    assert len(await _alerts(database, cycle_id)) == 1
    await resumer.watch_runs()  # asked again: nothing new
    assert len(await _alerts(database, cycle_id)) == 1


async def test_a_run_waiting_suspended_is_not_taken_for_dead(database, resumer, prefect_api):
    run_id = await _run_in(Paused(pause_key="stage:materials:aa11"))
    async with database.transaction() as session:  # it said "running" last (it died? no: it suspended)
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"h-{uuid.uuid4().hex[:12]}", starts_on=dt.date(2026, 1, 15)
        )
        cycle.run_id, cycle.run_state, cycle.heartbeat_at = str(run_id), "running", utcnow() - dt.timedelta(hours=1)
    await resumer.watch_runs()
    async with database.sessions() as session:
        assert (await session.get(Cycle, cycle.id)).attention is None
    assert (await _state(run_id)).is_paused()
