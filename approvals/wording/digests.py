"""The daily digest as data: what it says of each open step, in the official's language. The
links are placeholders' arguments (the step's link, the queue's), written when the email is sent."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from approvals.plan.schema import Plan
from approvals.running.digests import DailyDigest
from approvals.tokens import approval_link_argument
from approvals.wording.message_types import Context
from approvals.wording.presentation import person_context, step_context


@dataclass(frozen=True)
class DigestMessage:
    """The digest email to write; `links` are the steps' link arguments, in the order of `steps`."""

    kind: str
    key: str
    language: str
    name: str
    email: str
    context: Context
    links: list[str]
    queue_argument: str


def daily_digest_message(plan: Plan, digest: DailyDigest, *, now: dt.datetime) -> DigestMessage:
    official = digest.official
    language = official.language.value
    steps = []
    for step in digest.steps:
        shown = step_context(plan, step.request, step.cycle, language=language)
        steps.append(
            {
                "stage": shown["stage"],
                "unit": shown["agency"],
                "cycle": shown["cycle"],
                "due": shown["due"],
                "overdue": "yes" if step.overdue(now) else "",
            }
        )
    day = digest.day.strftime("%d/%m/%Y")
    return DigestMessage(
        kind="daily_digest",
        key=f"daily_digest:{official.id}:{digest.day.isoformat()}",
        language=language,
        name=official.name,
        email=str(official.email),
        context={
            **person_context(official, language),
            "count": str(len(steps)),
            "overdue": str(sum(1 for s in steps if s["overdue"])),
            "day": day,
            "steps": steps,
        },
        links=[approval_link_argument(s.assignment.id, s.assignment.token_generation) for s in digest.steps],
        queue_argument=f"{official.id}:{digest.day:%Y%m%d}",
    )
