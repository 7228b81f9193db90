"""The coordinators' alerts about the channels besides email (notifications/channels): a Zalo OA
whose token could not be refreshed, so nobody is reached on Zalo until a person authorises the OA
again. Once per token generation: the key names it, and a key is queued once."""

from __future__ import annotations

import datetime as dt

from approvals.plan.schema import Plan
from approvals.wording.message_types import PlainMessage
from approvals.wording.messages import coordinators_alerted


def zalo_token_messages(
    plan: Plan, *, app_id: str, generation: int, detail: str, at: dt.datetime, base_url: str
) -> list[PlainMessage]:
    """Tell the coordinators that Zalo refused to refresh the OA's token: messages meant for Zalo
    go to each official's next channel meanwhile."""
    return coordinators_alerted(
        plan,
        reason="zalo_token_failed",
        note="zalo_token",
        once_per=f"{app_id}:{generation}",
        detail=detail,
        at=at,
        base_url=base_url,
    )
