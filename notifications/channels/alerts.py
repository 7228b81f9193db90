"""Who hears when a channel fails for good: the coordinators, by email, queued through
`notifications.emails` like every other alert. `ZaloTokens(on_failure=coordinators_told(...))`
tells them once per token generation that Zalo refused the OA's refresh."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from approvals.db import Database
from notifications.channels.zalo_token import TokenFailure

if TYPE_CHECKING:  # emails imports the channels (a phone message beside an email): not back at run time
    from notifications.emails import Emails


def coordinators_told(db: Database, emails: Emails) -> Callable[[TokenFailure], Awaitable[None]]:
    """An `on_failure` for ZaloTokens: the coordinators' alert queued in its own transaction."""

    async def tell(failure: TokenFailure) -> None:
        async with db.transaction() as session:
            await emails.zalo_token_failed(
                session, app_id=failure.app_id, generation=failure.generation, detail=failure.detail, at=failure.at
            )

    return tell
