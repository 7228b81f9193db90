"""Who hears when a channel besides email stops: the coordinators, by email, queued through
`notifications.emails` like every other alert (`approvals.wording.channel_alerts` words them).

- `coordinators_told` is `ZaloTokens`' `on_failure`: Zalo refused the OA's token refresh (told
  once per token generation);
- `coordinators_told_of_failing` is the dispatcher's `on_failing`: a channel whose provider
  failed every message of the last hour (`notifications.channel_health`; told once a day per
  channel, however many dispatchers notice it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from approvals.db import Database, utcnow
from approvals.wording.channel_alerts import ChannelAlert
from notifications.channel_health import FailingChannel
from notifications.channels.zalo_token import TokenFailure

if TYPE_CHECKING:  # emails imports the channels (a phone message beside an email): not back at run time
    from notifications.emails import Emails


def coordinators_told(db: Database, emails: Emails) -> Callable[[TokenFailure], Awaitable[None]]:
    """An `on_failure` for ZaloTokens: the coordinators' alert queued in its own transaction."""

    async def tell(failure: TokenFailure) -> None:
        alert = ChannelAlert.zalo_token_failed(
            app_id=failure.app_id, generation=failure.generation, detail=failure.detail, at=failure.at
        )
        async with db.transaction() as session:
            await emails.channel_alert(session, alert)

    return tell


def coordinators_told_of_failing(db: Database, emails: Emails) -> Callable[[FailingChannel], Awaitable[None]]:
    """An `on_failing` for the channel dispatcher: the coordinators' alert queued in its own transaction."""

    async def tell(failing: FailingChannel) -> None:
        alert = ChannelAlert.channel_failing(emails.plan, channel=failing.channel, detail=str(failing), at=utcnow())
        async with db.transaction() as session:
            await emails.channel_alert(session, alert)

    return tell
