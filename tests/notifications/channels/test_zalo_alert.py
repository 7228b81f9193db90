"""A Zalo token that cannot be refreshed tells the coordinators once, by email, through the
outbox (the alert's key names the token's generation)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from approvals.db import utcnow
from notifications.channels.alerts import coordinators_told
from notifications.channels.zalo_token import ZaloTokenFailed, ZaloTokens, store_tokens
from notifications.models import OutboxMessage
from tests.notifications.reply_mail import PLAN
from tests.support.fake_zns import APP_ID, SECRET_KEY


async def test_a_refused_refresh_tells_each_coordinator_once(mailroom, fake_zalo):
    access, refresh = fake_zalo.issue_tokens()
    await store_tokens(mailroom.db, APP_ID, access_token=access, refresh_token=refresh, expires_in=0)
    assert fake_zalo.spend(refresh) is not None  # spent elsewhere, the new tokens never stored
    told = coordinators_told(mailroom.db, mailroom.emails)
    clients = [
        ZaloTokens(
            mailroom.db,
            app_id=APP_ID,
            secret_key=SECRET_KEY,
            oauth_url=fake_zalo.base_url,
            grace=0.2,
            on_failure=told,
        )
        for _ in range(2)
    ]
    try:
        for client in clients:  # two processes meet the same dead token
            with pytest.raises(ZaloTokenFailed):
                await client.access_token()
    finally:
        for client in clients:
            await client.aclose()
    coordinators = {str(p.email) for p in PLAN.holders("lead_agency.coordinator", utcnow().astimezone(PLAN.tz).date())}
    async with mailroom.db.reads() as session:
        queued = list(
            (
                await session.execute(
                    select(OutboxMessage).where(OutboxMessage.idempotency_key.like("attention:zalo_token_failed:%"))
                )
            ).scalars()
        )
    assert coordinators and {r["email"] for m in queued for r in m.recipients} == coordinators
    assert len(queued) == len(coordinators)  # once each, though two processes failed
    assert all("invalid_grant" in m.text_body and "Zalo OA" in m.subject for m in queued)
