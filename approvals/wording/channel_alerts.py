"""The coordinators' alerts about the channels besides email (notifications/channels): a Zalo OA
whose token could not be refreshed, so nobody is reached on Zalo until a person authorises the OA
again. Once per token generation: the key names it, and a key is queued once."""

from __future__ import annotations

import datetime as dt

from approvals.plan.schema import Plan
from approvals.wording.message_types import PlainMessage
from approvals.wording.messages import coordinators
from approvals.wording.presentation import person_context


def zalo_token_messages(
    plan: Plan, *, app_id: str, generation: int, detail: str, at: dt.datetime, base_url: str
) -> list[PlainMessage]:
    """Tell the coordinators that Zalo refused to refresh the OA's token: messages meant for Zalo
    go to each official's next channel meanwhile."""
    return [
        PlainMessage(
            kind="attention",
            key=f"attention:zalo_token_failed:{app_id}:{generation}:{person.id}",
            language=person.language.value,
            name=person.name,
            email=str(person.email),
            context={
                **person_context(person, person.language.value),
                **{"cycle": "", "stage": "", "agency": "", "due": ""},
                "reason": "zalo_token_failed",
                "note": "zalo_token",
                "detail": detail,
                "link": f"{base_url.rstrip('/')}/",
            },
        )
        for person in coordinators(plan, at)
    ]
