"""What a person is shown about a step, in their language: its names, its due time, what earlier
stages sent with it; used by emails and pages alike."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from approvals.clock.deadlines import clock_of
from approvals.i18n import local_time
from approvals.models import ApprovalRequest, Cycle
from approvals.plan.people import Official
from approvals.plan.schema import Plan
from approvals.routing.steps import StageNotInPlan, stage_of

if TYPE_CHECKING:
    pass


def cycle_context(plan: Plan, cycle: Cycle, *, language: str) -> dict[str, str]:
    """What every email about a cycle says of it: its name, and whether it is a rehearsal
    ("[Diễn tập]" in the subject, and a banner)."""
    kind = next((c for c in plan.cycles if c.id == cycle.kind), None)  # a kind the plan no longer has: its id
    return {
        "cycle": f"{kind.name.get(language) if kind else cycle.kind} {cycle.period}",
        "rehearsal": "yes" if clock_of(plan, cycle).rehearsal else "",
    }


def dated_time(plan: Plan, cycle: Cycle, at: dt.datetime, *, language: str) -> str:
    """An instant as the cycle's own calendar dates it (a rehearsal's compressed year names its
    own days), in the plan's time zone."""
    return local_time(clock_of(plan, cycle).dated(at), plan.tz, language)


def step_context(plan: Plan, request: ApprovalRequest, cycle: Cycle, *, language: str) -> dict[str, str]:
    stage = stage_of(plan, cycle.kind, request.stage)
    return {
        **cycle_context(plan, cycle, language=language),
        "stage": f"{stage.number}. {stage.name.get(language)}",
        "agency": plan.agency(request.acting_agency).name.get(language),
        "due": dated_time(plan, cycle, request.due_at, language=language),  # a rehearsal's on its own calendar
        "summary": stage.summary.get(language) if stage.summary else "",
    }


SHOWN_NOTE = {
    "absent": {
        "vi": "Không nhận được trong hạn; Kế hoạch tiếp tục mà không có nội dung này.",
        "en": "Nothing came by its due time; the plan went on without it.",
    },
    "pending": {"vi": "Đã gửi, chưa được tiếp nhận.", "en": "Sent, not yet acknowledged."},
}


def shown_context(
    plan: Plan, request: ApprovalRequest, cycle: Cycle, *, language: str, base: str = ""
) -> list[dict[str, Any]]:
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


def email_context(plan: Plan, request: ApprovalRequest, cycle: Cycle, *, language: str) -> dict[str, str]:
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
