"""Fixtures of the channel tests: the fake providers (tests/support/fake_zns.py, fake_esms.py)
and a Zalo app of each test's own, its tokens stored in the sandbox's database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import delete

from approvals.db import Database
from notifications.channels.esms import EsmsGateway
from notifications.channels.sms import SmsChannel
from notifications.channels.zalo_token import TokenFailure, ZaloTokens, store_tokens
from notifications.channels.zns import ZnsChannel
from notifications.models import ZaloToken
from tests.support.fake_esms import API_KEY as ESMS_API_KEY
from tests.support.fake_esms import (
    BRANDNAME,
    fake_esms,  # noqa: F401
)
from tests.support.fake_esms import SECRET_KEY as ESMS_SECRET_KEY
from tests.support.fake_zns import SECRET_KEY, FakeZalo, fake_zalo  # noqa: F401


@dataclass
class ZaloApp:
    """A Zalo app of one test: its id at the fake, its tokens, and the failures told."""

    app_id: str
    fake: FakeZalo
    database: Database
    access_token: str = ""
    refresh_token: str = ""

    def __post_init__(self) -> None:
        self.told: list[TokenFailure] = []

    async def authorise(self, *, expires_in: float = 90000) -> None:
        """Authorise the OA: fresh tokens from the fake, stored (expires_in 0: already due)."""
        self.access_token, self.refresh_token = self.fake.issue_tokens()
        await store_tokens(
            self.database,
            self.app_id,
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            expires_in=expires_in,
        )

    def tokens(self, database: Database | None = None, *, grace: float = 5.0) -> ZaloTokens:
        async def tell(failure: TokenFailure) -> None:
            self.told.append(failure)

        return ZaloTokens(
            database or self.database,
            app_id=self.app_id,
            secret_key=SECRET_KEY,
            oauth_url=self.fake.base_url,
            timeout=10.0,
            grace=grace,
            on_failure=tell,
        )

    async def row(self) -> ZaloToken:
        async with self.database.reads() as session:
            row = await session.get(ZaloToken, self.app_id, populate_existing=True)
        assert row is not None
        return row


@pytest.fixture
async def zalo_app(database, fake_zalo):  # noqa: F811
    app = ZaloApp(app_id=f"app-{uuid.uuid4().hex[:12]}", fake=fake_zalo, database=database)
    fake_zalo.secrets[app.app_id] = SECRET_KEY
    yield app
    async with database.transaction() as session:
        await session.execute(delete(ZaloToken).where(ZaloToken.app_id == app.app_id))


TEMPLATES = {"approval_request": "231001", "reminder": "231002"}  # the ZNS templates `channels` knows
# Long enough for a fake in this process's threads to answer under a loaded full run, short enough
# that a test of a provider that hangs waits little.
PROVIDER_TIMEOUT = 3.0


@pytest.fixture
async def channels(private_database, fake_zalo, fake_esms):  # noqa: F811
    """The ZNS and SMS channels on the fakes, the Zalo app's tokens in the test's own database."""
    app = ZaloApp(app_id=f"app-{uuid.uuid4().hex[:12]}", fake=fake_zalo, database=private_database)
    fake_zalo.secrets[app.app_id] = SECRET_KEY
    await app.authorise()
    tokens = app.tokens()
    zns = ZnsChannel(tokens, template_ids=TEMPLATES, base_url=fake_zalo.base_url, timeout=PROVIDER_TIMEOUT)
    gateway = EsmsGateway(
        api_key=ESMS_API_KEY,
        secret_key=ESMS_SECRET_KEY,
        brandname=BRANDNAME,
        sandbox=False,
        base_url=fake_esms.base_url,
        timeout=PROVIDER_TIMEOUT,
    )
    sms = SmsChannel(gateway)
    yield {"zalo": zns, "sms": sms}
    await zns.aclose()
    await sms.aclose()
    await tokens.aclose()
