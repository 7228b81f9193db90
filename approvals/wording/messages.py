"""The emails of the plan, as data: who gets which kind of email, in which language, with what
in it (the words are the templates'; queueing them is notifications.emails)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from approvals.clock.deadlines import planned_due
from approvals.i18n import local_time
from approvals.models import ApprovalRequest, Cycle, Decision
from approvals.plan.people import Official
from approvals.plan.schema import Plan
from approvals.routing.steps import NewAssignment
from approvals.statuses import LinkKind
from approvals.tokens import approval_link_argument
from approvals.wording.message_types import ClosingMessage, FailedDelivery, LinkMessage
from approvals.wording.message_types import PlainMessage as PlainMessage  # notifications.emails imports it from here

if TYPE_CHECKING:
    from approvals.routing.submissions import SubmissionAsked
    from approvals.running.sweep import OverdueNotice
from approvals.wording.presentation import (
    cycle_context,
    dated_time,
    email_context,
    official_name,
    person_context,
    step_context,
)


def receipt_message(
    plan: Plan, request: ApprovalRequest, cycle: Cycle, decision: Decision, *, at: dt.datetime, by_reply: bool = False
) -> ClosingMessage | None:
    """The decider's confirmation (so a decision they did not make gets noticed); for a decision
    made by replying, it says first what was understood ("Đã ghi nhận: Đồng ý") and the comment."""
    official = plan.official(decision.official_id)
    if official is None:
        return None
    language = official.language.value
    step = step_context(plan, request, cycle, language=language)
    return ClosingMessage(
        kind="receipt",
        key=f"receipt:{decision.id}",
        language=language,
        name=official.name,
        email=str(official.email),
        context={
            "stage": step["stage"],
            "cycle": step["cycle"],
            "rehearsal": step["rehearsal"],
            "outcome": decision.outcome,
            "at": dated_time(plan, cycle, at, language=language),
            "comment": decision.comment,
            "by_reply": "yes" if by_reply else "",
        },
        request_id=str(request.id),
        official_id=official.id,
        due=request.due_at.astimezone(plan.tz),
    )


def closed_messages(
    plan: Plan, request: ApprovalRequest, cycle: Cycle, officials: Sequence[str], *, decided_by: str, at: dt.datetime
) -> list[ClosingMessage]:
    """To each official whose link the outcome closed: no action is needed any more."""
    messages = []
    for official_id in officials:
        official = plan.official(official_id)
        if official is None:
            continue
        language = official.language.value
        step = step_context(plan, request, cycle, language=language)
        messages.append(
            ClosingMessage(
                kind="step_closed",
                key=f"step_closed:{request.id}:{official.id}",
                language=language,
                name=official.name,
                email=str(official.email),
                context={
                    **person_context(official, language),
                    "stage": step["stage"],
                    "cycle": step["cycle"],
                    "rehearsal": step["rehearsal"],
                    "result": request.status,
                    "decided_by": decided_by,
                    "at": dated_time(plan, cycle, at, language=language),
                },
                request_id=str(request.id),
                official_id=official.id,
                due=request.due_at.astimezone(plan.tz),
            )
        )
    return messages


def problem_argument(official: Official, tz: ZoneInfo) -> str:
    """The official's problem link for an email queued today (see approvals.tokens.problem_token)."""
    return f"{official.id}:{dt.datetime.now(tz):%Y%m%d}"


def link_messages(
    plan: Plan, request: ApprovalRequest, cycle: Cycle, notify: Sequence[NewAssignment], *, kind: str
) -> list[LinkMessage]:
    """A request, a reminder or an escalation for each assignee, keyed by assignment and link generation."""
    messages = []
    for new in notify:
        language = new.official.language.value
        generation = new.assignment.token_generation
        messages.append(
            LinkMessage(
                kind=kind,
                key=f"{kind}:{new.assignment.id}:{generation}",
                language=language,
                name=new.official.name,
                email=str(new.official.email),
                context={
                    **person_context(new.official, language),
                    **email_context(plan, request, cycle, language=language),
                },
                link_argument=approval_link_argument(new.assignment.id, generation),
                problem_argument=problem_argument(new.official, plan.tz),
                request_id=str(request.id),
                official_id=new.official.id,
                due=request.due_at.astimezone(plan.tz),
            )
        )
    return messages


def submission_message(
    plan: Plan, request: ApprovalRequest, cycle: Cycle, asked: SubmissionAsked, *, reminder: int | str = 0
) -> LinkMessage:
    """The email with a submission link: the step's first submission, or a resubmission after
    a request for changes (its page shows the reviewers' comments); `reminder` marks the
    sweep's n-th (or a coordinator's) reminder, whose link is the fresh one the reminder issued."""
    official, link = asked.official, asked.link
    language = official.language.value
    kind = "submission_request" if link.kind == LinkKind.first.value else "resubmission_request"
    return LinkMessage(
        kind=kind,
        key=f"{kind}:{link.id}:{link.token_generation}" + (f":reminder-{reminder}" if reminder else ""),
        language=language,
        name=official.name,
        email=str(official.email),
        context={**person_context(official, language), **email_context(plan, request, cycle, language=language)},
        link_argument=approval_link_argument(link.id, link.token_generation),
        problem_argument=problem_argument(official, plan.tz),
        request_id=str(request.id),
        official_id=official.id,
        due=request.due_at.astimezone(plan.tz),
    )


def overdue_messages(plan: Plan, notice: OverdueNotice) -> list[PlainMessage]:
    """Tell a stage's superior which of its steps are past their due time and stay open: units
    that have not submitted, or approvers who have not decided, all in one email. No link:
    nobody decides in their place, and the email may be forwarded to them. The key names the
    branches told, so a digest is queued once."""
    kind = "submission_overdue" if notice.submission else "step_overdue"
    official = notice.official
    language = official.language.value
    first = step_context(plan, notice.branches[0].request, notice.cycle, language=language)
    ids = sorted(str(b.request.id) for b in notice.branches)
    told = hashlib.sha256(",".join([official.id, *ids]).encode()).hexdigest()[:24]
    units = [
        {
            "unit": plan.agency(b.request.acting_agency).name.get(language),
            "officer": ", ".join(official_name(plan, o) for o in b.waiting_on) or "—",
            "due": dated_time(plan, notice.cycle, b.request.due_at, language=language),
        }
        for b in notice.branches
    ]
    return [
        PlainMessage(
            kind=kind,
            key=f"{kind}:{notice.cycle.id}:{notice.stage.id[:40]}:{told}",
            language=language,
            name=official.name,
            email=str(official.email),
            context={
                **person_context(official, language),
                "cycle": first["cycle"],
                "rehearsal": first["rehearsal"],
                "stage": first["stage"],
                "count": str(len(units)),
                "units": units,
            },
        )
    ]


def coordinators(plan: Plan, at: dt.datetime) -> list[Official]:
    """Who hears when something needs a person: the lead agency's coordinators on the day."""
    return plan.holders("lead_agency.coordinator", at.astimezone(plan.tz).date())


def unrouted_messages(
    plan: Plan, request: ApprovalRequest, cycle: Cycle, *, action: str, at: dt.datetime, base_url: str
) -> list[PlainMessage]:
    """Tell the coordinators that nobody could be asked to submit (or resubmit) a step: without
    them it would wait on an email that was never sent."""
    messages = []
    reason = f"{action}_unrouted"
    for person in coordinators(plan, at):
        language = person.language.value
        step = step_context(plan, request, cycle, language=language)
        messages.append(
            PlainMessage(
                kind="attention",
                key=f"attention:{reason}:{request.id}:{person.id}",
                language=language,
                name=person.name,
                email=str(person.email),
                context={
                    **person_context(person, language),
                    "cycle": step["cycle"],
                    "rehearsal": step["rehearsal"],
                    "stage": step["stage"],
                    "agency": step["agency"],
                    "due": step["due"],
                    "reason": reason,
                    "note": "unrouted",
                    "detail": "",
                    "link": f"{base_url.rstrip('/')}/requests/{request.id}",
                },
            )
        )
    return messages


def replies_unread_messages(
    plan: Plan, *, mailbox: str, detail: str, at: dt.datetime, base_url: str
) -> list[PlainMessage]:
    """Tell the coordinators that the officials' emailed replies are not being read (the mailbox
    `kehoach inbound` reads has been unreachable for a while): once a day per mailbox."""
    day = at.astimezone(plan.tz).date().isoformat()
    return coordinators_alerted(
        plan,
        reason="replies_unread",
        note="replies",
        once_per=f"{mailbox}:{day}",
        detail=detail,
        at=at,
        base_url=base_url,
    )


def coordinators_alerted(
    plan: Plan, *, reason: str, note: str, once_per: str, detail: str, at: dt.datetime, base_url: str
) -> list[PlainMessage]:
    """An attention email to each coordinator about something outside any cycle (`reason`,
    `note` name its wording), keyed so that it goes once per `once_per`."""
    return [
        PlainMessage(
            kind="attention",
            key=f"attention:{reason}:{once_per}:{person.id}",
            language=person.language.value,
            name=person.name,
            email=str(person.email),
            context={
                **person_context(person, person.language.value),
                **{"cycle": "", "stage": "", "agency": "", "due": ""},
                "reason": reason,
                "note": note,
                "detail": detail,
                "link": f"{base_url.rstrip('/')}/",
            },
        )
        for person in coordinators(plan, at)
    ]


def cycle_attention_messages(
    plan: Plan, cycle: Cycle, *, reason: str, detail: str, at: dt.datetime, base_url: str
) -> list[PlainMessage]:
    """Tell the coordinators that a cycle stopped and needs them (once per incident: the key
    carries the cycle's restart count)."""
    messages = []
    for person in coordinators(plan, at):
        language = person.language.value
        messages.append(
            PlainMessage(
                kind="attention",
                key=f"attention:{reason}:{cycle.id}:{cycle.restarts}:{person.id}",
                language=language,
                name=person.name,
                email=str(person.email),
                context={
                    **person_context(person, language),
                    **cycle_context(plan, cycle, language=language),
                    "stage": "",
                    "agency": "",
                    "due": "",
                    "reason": reason,
                    "note": "restart",
                    "detail": detail,
                    "link": f"{base_url.rstrip('/')}/",
                },
            )
        )
    return messages


def outcome_message(
    plan: Plan, request: ApprovalRequest, cycle: Cycle, *, decided_by: str, comment: str, at: dt.datetime, base_url: str
) -> PlainMessage | None:
    """Tell the official who submitted the step how it ended (approved, rejected, expired)."""
    submitter = plan.official(request.requested_by) if request.requested_by else None
    if submitter is None:
        return None
    language = submitter.language.value
    step = step_context(plan, request, cycle, language=language)
    return PlainMessage(
        kind="outcome",
        key=f"outcome:{request.id}",
        language=language,
        name=submitter.name,
        email=str(submitter.email),
        context={
            **person_context(submitter, language),
            "cycle": step["cycle"],
            "rehearsal": step["rehearsal"],
            "stage": step["stage"],
            "result": request.status,
            "decided_by": decided_by,
            "comment": comment,
            "at": dated_time(plan, cycle, at, language=language),
            "link": f"{base_url.rstrip('/')}/requests/{request.id}",
        },
    )


def delivery_failure_messages(
    plan: Plan, failed: Sequence[FailedDelivery], *, at: dt.datetime, base_url: str
) -> list[PlainMessage]:
    """Tell the coordinators which emails could not be delivered (`failed`: outbox rows), once
    per set of failures (the key carries their fingerprint)."""
    if not failed:
        return []
    fingerprint = hashlib.sha256(",".join(sorted(str(m.id) for m in failed)).encode()).hexdigest()[:32]
    messages = []
    for person in coordinators(plan, at):
        language = person.language.value
        messages.append(
            PlainMessage(
                kind="delivery_failure",
                key=f"delivery_failure:{fingerprint}:{person.id}",
                language=language,
                name=person.name,
                email=str(person.email),
                context={
                    "title": person.title.get(language),
                    "name": person.name,
                    "count": str(len(failed)),
                    "failures": [
                        {
                            "recipient": ", ".join(r["email"] for r in m.recipients),
                            "subject": m.subject,
                            "error": (m.last_error or "")[:300],
                            "at": local_time(m.created_at, plan.tz, language),
                        }
                        for m in failed
                    ],
                    "link": f"{base_url.rstrip('/')}/",
                },
            )
        )
    return messages


def cycle_digest_messages(
    plan: Plan, cycle: Cycle, statuses: dict[str, str], *, event: str, at: dt.datetime, base_url: str
) -> list[PlainMessage]:
    """Coordinators' digest when a cycle starts or finishes: every stage with its status."""
    messages = []
    for person in coordinators(plan, at):
        language = person.language.value
        kind = plan.cycle(cycle.kind)
        stages = [
            {
                "stage": f"{s.number}. {s.name.get(language)}",
                "status": statuses.get(s.id, "not_started"),
                "due": dated_time(plan, cycle, planned_due(plan, s, cycle), language=language),
            }
            for s in kind.stages
        ]
        messages.append(
            PlainMessage(
                kind="cycle_digest",
                key=f"cycle_digest:{cycle.id}:{event}:{person.id}",
                language=language,
                name=person.name,
                email=str(person.email),
                context={
                    **person_context(person, language),
                    **cycle_context(plan, cycle, language=language),
                    "event": event,
                    "at": dated_time(plan, cycle, at, language=language),
                    "stages": stages,
                    "link": f"{base_url.rstrip('/')}/",
                },
            )
        )
    return messages
