"""Domain views turned into the API's `XRead` answers."""

from __future__ import annotations

import datetime as dt

from approvals.coordination import CycleView, History, RequestView
from approvals.plan import Plan
from approvals.plan.stages import StageKind
from approvals.routing.stages import WakeReason
from approvals.statuses import StageStatus
from service.api.schemas import (
    AssignmentRead,
    AuditEventRead,
    CycleRead,
    CycleRestartRead,
    CycleStageRead,
    DecisionRead,
    RequestHistoryRead,
    RequestRead,
)

NOT_STARTED = "not_started"


def cycle_name(plan: Plan, kind: str, period: str, language: str) -> str:
    found = next((c for c in plan.cycles if c.id == kind), None)
    return f"{found.name.get(language)} {period}" if found else f"{kind} {period}"


UNDER_WAY = "under_way"


def shown_status(stage, recorded: str) -> str:
    """A stage's status as coordinators read it: the implementation period (stage 6) has no
    request of its own, so while the chain is in it, it is under way, not waiting for approval."""
    if stage is not None and stage.kind is StageKind.implementation and recorded == StageStatus.waiting.value:
        return UNDER_WAY
    return recorded


def stages_read(plan: Plan, view: CycleView, language: str) -> list[CycleStageRead]:
    """The plan's stages in order, started or not; then any the plan no longer names."""
    kind = next((c for c in plan.cycles if c.id == view.cycle.kind), None)
    planned = list(kind.stages) if kind else []
    shown = []
    for stage_id in [s.id for s in planned] + sorted(set(view.stages) - {s.id for s in planned}):
        stage = plan.stage(view.cycle.kind, stage_id)
        progress = view.stages.get(stage_id)
        shown.append(
            CycleStageRead(
                stage=stage_id,
                number=stage.number if stage else "?",
                name=stage.name.get(language) if stage else stage_id,
                status=shown_status(stage, progress.status if progress and progress.status else NOT_STARTED),
                updated_at=progress.updated_at if progress else None,
                requests_total=progress.total if progress else 0,
                requests_settled=progress.settled if progress else 0,
                requests_overdue=progress.overdue if progress else 0,
            )
        )
    return shown


def cycle_read(plan: Plan, view: CycleView, language: str) -> CycleRead:
    cycle = view.cycle
    return CycleRead(
        id=cycle.id,
        kind=cycle.kind,
        name=cycle_name(plan, cycle.kind, cycle.period, language),
        period=cycle.period,
        starts_on=cycle.starts_on,
        created_at=cycle.created_at,
        cancelled_at=view.cancelled_at,
        flow_runs=view.flow_runs,
        run_id=cycle.run_id,
        run_state=cycle.run_state,
        attention=cycle.attention,
        attention_at=cycle.attention_at,
        attention_detail=cycle.attention_detail,
        restart=restart_read(view.restart),
        finished_at=cycle.finished_at,
        shift_days=cycle.shift_days,
        stages=stages_read(plan, view, language),
    )


def restart_read(wake) -> CycleRestartRead | None:
    """A restart asked (a wake of stage ~restart), as the API shows it."""
    if wake is None:
        return None
    return CycleRestartRead(
        status=wake.status,
        asked_at=wake.created_at,
        asked_by=wake.requested_by,
        forced=wake.reason == WakeReason.restart_forced,
        attempts=wake.attempts,
        detail=wake.last_error or "",
        run_id=wake.run_id,
        done_at=wake.done_at,
    )


def request_read(view: RequestView, now: dt.datetime) -> RequestRead:
    r = view.request
    return RequestRead(
        id=r.id,
        cycle_id=r.cycle_id,
        cycle_kind=view.cycle.kind,
        period=view.cycle.period,
        stage=r.stage,
        subject=r.subject,
        round=r.round,
        policy=r.policy,
        quorum=r.quorum,
        acting_agency=r.acting_agency,
        status=r.status,
        due_at=r.due_at,
        overdue=view.overdue(now),
        created_at=r.created_at,
        decided_at=r.decided_at,
        escalated_at=r.escalated_at,
        expires_at=r.expires_at,
        reminders_sent=r.reminders_sent,
        requested_by=r.requested_by,
        previous_id=r.previous_id,
        waiter_ref=r.waiter_ref,
        waiting_on=view.waiting_on,
    )


def history_read(plan: Plan, found: History, now: dt.datetime) -> RequestHistoryRead:
    def name(official_id: str) -> str | None:
        official = plan.official(official_id)
        return official.name if official else None

    return RequestHistoryRead(
        request=request_read(RequestView(found.request, found.cycle, found.waiting_on), now),
        assignments=[
            AssignmentRead.model_validate({**_columns(a), "official_name": name(a.official_id)})
            for a in found.assignments
        ],
        decisions=[DecisionRead.model_validate(d) for d in found.decisions],
        audit=[AuditEventRead.model_validate(e) for e in found.audit],
    )


def _columns(row) -> dict:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}
