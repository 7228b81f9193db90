"""The consolidated report issued from a cycle's run once its director approved it
(`approvals.consolidated.issuing`), emailed to its recipients (`notifications.emails`)."""

from __future__ import annotations

import datetime as dt

from prefect import task
from prefect.logging import get_run_logger
from prefect.states import State

from approvals.config import get_settings
from approvals.errors import Refused
from approvals.plan import load_plan
from approvals.signing.errors import RemoteSignatureLapsed
from flows.stages import STEP, cycle_of, database
from notifications.emails import Emails
from notifications.render import shared_renderer


def worth_retrying(task: object, task_run: object, state: State) -> bool:
    """Prefect's retry condition: a refused signature (a wrong PIN, an expired certificate, no
    signer configured) is not tried again, for a token locks after a few wrong PINs and the
    fault needs a person, nor a remote signature the director refused or let lapse (trying again
    asks them again: the coordinators restart the cycle when they should); what is only
    unavailable now (a timestamp authority down) is."""
    return not isinstance(state.data, (Refused, RemoteSignatureLapsed))


@task(name="issue-report", retry_condition_fn=worth_retrying, **STEP)
async def issue_report(*, cycle_kind: str, period: str, stage_id: str) -> dict:
    """Sign, number, seal, send and record the approved consolidated report of a cycle (once);
    {"awaiting_signature": True} while its director has not confirmed the signature on the phone."""
    # Imported here, not at the top: the signing stack (pyHanko, the fonts, the layout) is half of
    # what every flow-run process imports, and only the run that issues a report needs it. Prefect
    # starts a process per run and per resume (a year's rehearsal starts hundreds).
    from approvals.consolidated.issuing import issue
    from approvals.signing.signers import signers_for

    settings = get_settings()
    async with database(settings) as db:
        async with db.reads() as session:
            cycle = await cycle_of(session, cycle_kind, period)
        plan = load_plan(settings.plan_file)
        emails = Emails.of(plan, settings, shared_renderer())
        issued = await issue(
            db,
            plan=plan,
            cycle_id=cycle.id,
            stage_id=stage_id,
            send=emails.report_issued,
            signers=signers_for(settings, plan),
            remote_expires_after=dt.timedelta(minutes=settings.remote_signature_minutes),
        )
    if issued is None:  # the director signs on the phone: asked, not answered yet
        get_run_logger().info("Report of %s/%s waits for its director's signature on the phone", cycle_kind, period)
        return {"awaiting_signature": True}
    if issued.new:
        get_run_logger().info(
            "Report %s/%s of %s/%s issued to %d recipient(s)",
            issued.number,
            issued.symbol,
            cycle_kind,
            period,
            len(issued.recipients),
        )
    return {"number": issued.number, "symbol": issued.symbol, "new": issued.new}
