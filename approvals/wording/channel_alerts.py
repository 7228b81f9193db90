"""The coordinators' alerts about the channels besides email (notifications/channels), each once:
- `zalo_token_failed`: Zalo refused to refresh the OA's token, so nobody is reached on Zalo until
  a person authorises the OA again (once per token generation);
- `channel_failing`: a channel's provider failed every message of the last hour (a template Zalo
  withdrew, an eSMS balance spent, a provider down; once a day per channel).
Messages meant for the channel go to each official's next channel meanwhile, and the email, queued
beside every one of them, still reaches the officials."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from approvals.plan.schema import Plan
from approvals.wording.message_types import PlainMessage
from approvals.wording.messages import coordinators_alerted

NOTES = {"zalo_token_failed": "zalo_token", "channel_failing": "channel_failing"}


@dataclass(frozen=True)
class ChannelAlert:
    reason: Literal["zalo_token_failed", "channel_failing"]
    subject: str  # the token's app and generation, or the channel: with the reason, what is told once
    detail: str  # what the provider said, for whoever fixes it
    at: dt.datetime

    @classmethod
    def zalo_token_failed(cls, *, app_id: str, generation: int, detail: str, at: dt.datetime) -> ChannelAlert:
        return cls("zalo_token_failed", f"{app_id}:{generation}", detail, at)

    @classmethod
    def channel_failing(cls, plan: Plan, *, channel: str, detail: str, at: dt.datetime) -> ChannelAlert:
        return cls("channel_failing", f"{channel}:{at.astimezone(plan.tz).date().isoformat()}", detail, at)


def channel_alert_messages(plan: Plan, alert: ChannelAlert, *, base_url: str) -> list[PlainMessage]:
    """The alert's email to each coordinator of its day, keyed so that it goes once."""
    return coordinators_alerted(
        plan,
        reason=alert.reason,
        note=NOTES[alert.reason],
        once_per=alert.subject,
        detail=alert.detail,
        at=alert.at,
        base_url=base_url,
    )
