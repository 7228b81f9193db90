"""What a person is shown about a step, in their language: used by emails and pages alike."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from approvals.deadlines import due_at
from approvals.i18n import local_time
from approvals.models import ApprovalRequest, Cycle
from approvals.plan.schema import Official, Plan
from approvals.requests import NewAssignment, StageNotInPlan, stage_of
from approvals.tokens import approval_link_argument

if TYPE_CHECKING:
    from approvals.sweep import OverdueNotice


def step_context(plan: Plan, request: ApprovalRequest, cycle: Cycle, *, language: str) -> dict[str, str]:
    stage = stage_of(plan, cycle.kind, request.stage)
    kind = plan.cycle(cycle.kind)
    return {
        "cycle": f"{kind.name.get(language)} {cycle.period}",
        "stage": f"{stage.number}. {stage.name.get(language)}",
        "agency": plan.agency(request.acting_agency).name.get(language),
        "due": local_time(request.due_at, plan.tz, language),
        "summary": stage.summary.get(language) if stage.summary else "",
    }


SHOWN_NOTE = {
    "absent": {
        "vi": "Không nhận được trong hạn; Kế hoạch tiếp tục mà không có nội dung này.",
        "en": "Nothing came by its due time; the plan went on without it.",
    },
    "pending": {"vi": "Đã gửi, chưa được tiếp nhận.", "en": "Sent, not yet acknowledged."},
}


def shown_context(plan: Plan, request: ApprovalRequest, cycle: Cycle, *, language: str, base: str = "") -> list[dict]:
    """What earlier stages sent that travels with this step (`Stage.shows`), for its pages:
    each stage's name, its text, named fields, links, and its files with a download address
    under `base` (the page's own live link), or a note that nothing came."""
    shown = []
    for entry in (request.data or {}).get("shown", []):
        try:
            stage = stage_of(plan, cycle.kind, entry["stage"])
        except (KeyError, StageNotInPlan):  # a stage gone from the plan: nothing to show of it
            continue
        names = {spec.id: spec.name.get(language) for spec in plan.fields_of(cycle.kind, stage)}
        shown.append(
            {
                "stage": f"{stage.number}. {stage.name.get(language)}",
                "status": entry.get("status", "absent"),
                "note": SHOWN_NOTE.get(entry.get("status", "absent"), {}).get(language, ""),
                "text": entry.get("text", ""),
                "links": entry.get("links", []),
                "fields": [
                    {"name": names.get(key, key), "value": value} for key, value in entry.get("fields", {}).items()
                ],
                "files": [
                    {"name": f["name"], "url": f"{base}/{f['id']}" if base else ""} for f in entry.get("files", [])
                ],
            }
        )
    return shown


def shown_summary(plan: Plan, request: ApprovalRequest, cycle: Cycle, *, language: str) -> str:
    """The same as plain text, for an email's summary (files by name: their page has the links)."""
    parts = []
    for entry in shown_context(plan, request, cycle, language=language):
        lines = [f"{entry['stage']}:"]
        if entry["text"]:
            lines.append(entry["text"])
        lines += [f"{f['name']}: {f['value']}" for f in entry["fields"]]
        lines += entry["links"] + [f["name"] for f in entry["files"]]
        if entry["note"]:
            lines.append(entry["note"])
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _email_context(plan: Plan, request: ApprovalRequest, cycle: Cycle, *, language: str) -> dict:
    """A step's words for an email: its context, with what earlier stages sent after the summary."""
    step = step_context(plan, request, cycle, language=language)
    carried = shown_summary(plan, request, cycle, language=language)
    if carried:
        step["summary"] = f"{step['summary']}\n\n{carried}" if step["summary"] else carried
    return step


def official_name(plan: Plan, official_id: str) -> str:
    official = plan.official(official_id)
    return official.name if official else official_id


def role_name(plan: Plan, role_id: str, language: str) -> str:
    role = next((r for r in plan.roles if r.id == role_id), None)
    return role.name.get(language) if role else role_id


def agency_name(plan: Plan, agency_id: str, language: str) -> str:
    agency = next((a for a in plan.agencies if a.id == agency_id), None)
    return agency.name.get(language) if agency else agency_id


def person_context(official: Official, language: str) -> dict[str, str]:
    return {"name": official.name, "title": official.title.get(language)}


@dataclass(frozen=True)
class PlainMessage:
    """An email with no personal link (it may be forwarded)."""

    kind: str
    key: str
    language: str
    name: str
    email: str
    context: dict[str, str]


@dataclass(frozen=True)
class LinkMessage(PlainMessage):
    """One personal-link email to write: who, in which language, about what, which link."""

    link_argument: str
    # The official's "Báo cáo vướng mắc" link (official:YYYYMMDD, signed when it is sent).
    problem_argument: str = ""
    # For the calendar invite: one event per request and official, ending at the due time.
    request_id: str = ""
    official_id: str = ""
    due: dt.datetime | None = None  # in the plan's time zone: its calendar invite is shown there


@dataclass(frozen=True)
class ClosingMessage(PlainMessage):
    """An email that ends a step for someone who had its deadline in their calendar: it
    carries the cancellation of that event (the same UID as the request's invite)."""

    request_id: str = ""
    official_id: str = ""
    due: dt.datetime | None = None  # in the plan's time zone, as the invite it cancels


def receipt_message(
    plan: Plan, request: ApprovalRequest, cycle: Cycle, decision, *, at: dt.datetime
) -> ClosingMessage | None:
    """The decider's confirmation (so a decision they did not make gets noticed)."""
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
            "outcome": decision.outcome,
            "at": local_time(at, plan.tz, language),
            "comment": decision.comment,
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
                    "result": request.status,
                    "decided_by": decided_by,
                    "at": local_time(at, plan.tz, language),
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
                    **_email_context(plan, request, cycle, language=language),
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
    plan: Plan, request: ApprovalRequest, cycle: Cycle, asked, *, reminder: int | str = 0
) -> LinkMessage:
    """The email with a submission link: the step's first submission, or a resubmission after
    a request for changes (its page shows the reviewers' comments); `reminder` marks the
    sweep's n-th (or a coordinator's) reminder, whose link is the fresh one the reminder issued."""
    official, link = asked.official, asked.link
    language = official.language.value
    kind = "submission_request" if link.kind == "first" else "resubmission_request"
    return LinkMessage(
        kind=kind,
        key=f"{kind}:{link.id}:{link.token_generation}" + (f":reminder-{reminder}" if reminder else ""),
        language=language,
        name=official.name,
        email=str(official.email),
        context={**person_context(official, language), **_email_context(plan, request, cycle, language=language)},
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
            "due": local_time(b.request.due_at, plan.tz, language),
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


def cycle_attention_messages(
    plan: Plan, cycle: Cycle, *, reason: str, detail: str, at: dt.datetime, base_url: str
) -> list[PlainMessage]:
    """Tell the coordinators that a cycle stopped and needs them (once per incident: the key
    carries the cycle's restart count)."""
    messages = []
    kind = next((c for c in plan.cycles if c.id == cycle.kind), None)  # a kind the plan no longer has: its id
    for person in coordinators(plan, at):
        language = person.language.value
        name = kind.name.get(language) if kind else cycle.kind
        messages.append(
            PlainMessage(
                kind="attention",
                key=f"attention:{reason}:{cycle.id}:{cycle.restarts}:{person.id}",
                language=language,
                name=person.name,
                email=str(person.email),
                context={
                    **person_context(person, language),
                    "cycle": f"{name} {cycle.period}",
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
            "stage": step["stage"],
            "result": request.status,
            "decided_by": decided_by,
            "comment": comment,
            "at": local_time(at, plan.tz, language),
            "link": f"{base_url.rstrip('/')}/requests/{request.id}",
        },
    )


def delivery_failure_messages(plan: Plan, failed: Sequence, *, at: dt.datetime, base_url: str) -> list[PlainMessage]:
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
        moved = dt.timedelta(days=cycle.shift_days or 0)
        stages = [
            {
                "stage": f"{s.number}. {s.name.get(language)}",
                "status": statuses.get(s.id, "not_started"),
                "due": local_time(due_at(s.due, cycle_start=cycle.starts_on, tz=plan.tz) + moved, plan.tz, language),
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
                    "cycle": f"{kind.name.get(language)} {cycle.period}",
                    "event": event,
                    "at": local_time(at, plan.tz, language),
                    "stages": stages,
                    "link": f"{base_url.rstrip('/')}/",
                },
            )
        )
    return messages
