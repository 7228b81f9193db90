"""The answer to an emailed reply that was not applied, as data: to whom, in which language, why,
and the approval page's link only when the sender is the one asked (or their live delegate)."""

from __future__ import annotations

from dataclasses import dataclass

from approvals.models import ApprovalRequest, Assignment, Cycle
from approvals.plan.schema import Plan
from approvals.tokens import approval_link_argument
from approvals.wording.message_types import LinkMessage, PlainMessage
from approvals.wording.presentation import step_context

KIND = "reply_answer"


@dataclass(frozen=True)
class Step:
    """The step a reply named, when its token named one."""

    request: ApprovalRequest
    cycle: Cycle
    assignment: Assignment


@dataclass(frozen=True)
class ReplyAnswer:
    """An answer to one reply (`key` names the reply: one answer per reply, however often it comes)."""

    key: str
    name: str
    email: str
    language: str
    reason: str  # the catalogue key that says why (reply.<handling>, reply.unrecognised, …)
    step: Step | None = None  # the step the reply's token named, if any
    with_link: bool = False  # the sender may decide it: the answer carries the page's link


def reply_answer_message(
    plan: Plan,
    *,
    key: str,
    name: str,
    email: str,
    language: str,
    reason: str,
    step: Step | None,
    with_link: bool,
) -> PlainMessage | LinkMessage:
    """One answer to one reply (`key` names the reply, so it is queued once). `reason` is the
    catalogue key that says why; `with_link` gives the approval page's link of the step's live
    assignment: the caller says so only for a sender who may decide it (a forwarded email must
    not hand the link to whoever forwarded it, nor to a stranger)."""
    words = step_context(plan, step.request, step.cycle, language=language) if step is not None else {}
    context: dict[str, str | list[dict[str, str]]] = {
        "name": name,
        "stage": words.get("stage", ""),
        "cycle": words.get("cycle", ""),
        "rehearsal": words.get("rehearsal", ""),
        "reason": reason,
    }
    if step is not None and with_link:
        return LinkMessage(
            kind=KIND,
            key=key,
            language=language,
            name=name,
            email=email,
            context=context,
            link_argument=approval_link_argument(step.assignment.id, step.assignment.token_generation),
        )
    return PlainMessage(kind=KIND, key=key, language=language, name=name, email=email, context={**context, "link": ""})
