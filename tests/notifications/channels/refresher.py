"""One process asking for the Zalo access token, for test_token_processes.py: it says "ready",
then prints the token it got (or the error), as a dispatcher on another machine would get it.

    python -m tests.notifications.channels.refresher DATABASE_URL APP_ID SECRET_KEY OAUTH_URL
"""

from __future__ import annotations

import asyncio
import sys

from approvals.db import Database
from notifications.channels.zalo_token import ZaloTokens


async def main(url: str, app_id: str, secret_key: str, oauth_url: str) -> None:
    db = Database(url)
    tokens = ZaloTokens(db, app_id=app_id, secret_key=secret_key, oauth_url=oauth_url, timeout=60.0)
    try:
        print("ready", flush=True)
        print(f"token {await tokens.access_token()}", flush=True)
    finally:
        await tokens.aclose()
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
