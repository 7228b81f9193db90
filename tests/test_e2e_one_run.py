"""One run per cycle: the run the yearly schedule creates and one started with `kehoach start`
for the same year never both carry it. The second finds the first carrying the cycle and joins
it (it ends at once, Completed, naming the run it joined), on both backends."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import text

from tests.support.officials import ASK, SUBMIT, Inbox, approve, submit_orientation

pytestmark = pytest.mark.e2e


def _scheduled_run(stack, year: int):
    """What the deployment's cron does on the plan's date: a run with the schedule's parameters,
    no idempotency key. (The cron passes no year: the run takes this year; here the year is given,
    so that each backend's stack works in a year of its own.)"""

    async def create():
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("annual-cycle/annual-cycle")
            return await client.create_flow_run_from_deployment(deployment.id, parameters={"year": year})

    with temporary_settings(updates={PREFECT_API_URL: stack.prefect.api_url}):
        return asyncio.run(create()).id


def test_a_scheduled_run_and_a_started_one_for_the_same_year_carry_it_once(stack):
    year = stack.year(18)
    scheduled = _scheduled_run(stack, year)
    started = stack.kehoach("start", "--year", str(year))
    assert started.returncode == 0, started.stderr
    by_hand = started.stdout.split("flow run ")[1].split()[0]
    assert by_hand != str(scheduled)

    # Whichever took the cycle first carries it; the other joins it and ends.
    deadline = time.monotonic() + 120
    while True:
        with stack.reading() as conn:
            owner = conn.execute(
                text("SELECT run_id FROM cycle WHERE kind = 'annual' AND period = :p"), {"p": str(year)}
            ).scalar()
        states = {run: stack.run_state(uuid.UUID(run)).name for run in (str(scheduled), by_hand)}
        if (owner and "Completed" in states.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert owner in states
    other = next(run for run in states if run != owner)
    assert states[other] == "Completed", states  # joined: it never waits
    assert stack.wait_for_state(uuid.UUID(owner), {"Suspended"}).name == "Suspended"  # the owner waits at stage 1

    inbox = Inbox(stack, year)
    submit_orientation(inbox)  # one request, one form link: the stage opened once
    approve(inbox.link("dcst_director", ASK, "1. "))
    with stack.reading() as conn:
        opened = conn.execute(
            text(
                "SELECT r.stage, r.waiter_ref FROM approval_request r JOIN cycle c "
                "ON c.id = r.cycle_id WHERE c.kind = 'annual' AND c.period = :p"
            ),
            {"p": str(year)},
        ).all()
    assert {(stage, waiter) for stage, waiter in opened} <= {("dic_direction", owner), ("propaganda_guidance", owner)}
    for asked in (SUBMIT, ASK):  # the press officer asked to submit once, the director to decide once
        emails = [
            r for r in stack.smtp.received if f"{year}" in r.subject and asked in r.subject and "1. " in r.subject
        ]
        assert len(emails) == 1, asked
