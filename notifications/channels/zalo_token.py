"""The Zalo OA access token, kept in the database and refreshed by one process at a time.

Zalo's OA access token lasts about 25 hours; the refresh token that comes with it lasts three
months and works once (hexasync.vn, "Zalo OA API: cách lấy Access Token từ Refresh token", and
developers.zalo.me's OA API v3 guide). So if two processes refreshed at once, the second would
spend a token the first already spent, and everyone would be locked out until a person
authorised the OA again. Every process therefore reads the tokens from the `zalo_token` row,
and refreshes them only holding that row's lock (SELECT ... FOR UPDATE on PostgreSQL; on
SQLite, the write lock every transaction takes when it begins, `approvals.db`): whoever gets
the lock second finds the new token stored and uses it without asking Zalo. The lock is held
across the call to Zalo, bounded by its timeout: the refresh happens about once a day, and on
SQLite every other writer waits for it meanwhile (SQLite has one write lock). A token within
`margin` of its end is refreshed; if Zalo cannot be reached then, it is used while it lasts.

The refresh (as documented there):
    POST https://oauth.zaloapp.com/v4/oa/access_token
    header secret_key: <the app's secret key>
    form refresh_token=<...>&app_id=<...>&grant_type=refresh_token
    -> {"access_token": "...", "refresh_token": "...", "expires_in": "90000"}
Assumed (not documented in what we found): a refused refresh token is answered with an
`error` code and an `error_name`/`error_description`; code -14014, or a text naming
`invalid_grant` or the refresh token, is read as invalid_grant.

After invalid_grant the stored row is read again, for up to `grace` seconds, before anyone
gives up: a process that refreshed outside this lock (an older release, a person seeding a new
token with `store_tokens`) may be about to store its tokens. A refresh that fails for good is
recorded on the row once per token generation; `on_failure` is called that once, for the caller
to tell the coordinators (`notifications.channels.alerts.coordinators_told`). A timeout, a
connection error or a 5xx is `ZaloTokenUnavailable`: the next send tries again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update

from approvals.db import Database, utcnow
from approvals.errors import KehoachError, Unavailable
from notifications.models import ZaloToken

log = logging.getLogger("kehoach.channels")

OAUTH_URL = "https://oauth.zaloapp.com"
REFRESH_PATH = "/v4/oa/access_token"
INVALID_GRANT_CODES = frozenset({-14014})  # assumed, see the module's docstring
MARGIN = dt.timedelta(minutes=30)  # an access token this close to its end is refreshed first


class ZaloTokenUnavailable(Unavailable):
    """Zalo's OAuth server could not be asked now (timeout, connection, 5xx): try later."""


@dataclass(frozen=True)
class TokenFailure:
    """A refresh that failed for good: the OA must be authorised again."""

    app_id: str
    generation: int
    detail: str
    at: dt.datetime


class ZaloTokenFailed(Unavailable):
    """No usable token: none stored, or the refresh was refused. ZNS is down until a person acts."""

    def __init__(self, message: str, failure: TokenFailure | None = None):
        super().__init__(message)
        self.failure = failure


class _Refused(KehoachError):
    """Zalo answered the refresh with an error: `invalid_grant` when it names the refresh token."""

    def __init__(self, detail: str, *, invalid_grant: bool):
        super().__init__(detail)
        self.detail = detail
        self.invalid_grant = invalid_grant


async def store_tokens(
    db: Database, app_id: str, *, access_token: str, refresh_token: str, expires_in: float = 90000
) -> None:
    """Store tokens got by authorising the OA (a person, once, or again after a failure)."""
    now = utcnow()
    async with db.transaction() as session:
        row = await session.get(ZaloToken, app_id, with_for_update=True)
        if row is None:
            row = ZaloToken(app_id=app_id, generation=0)
            session.add(row)
        row.access_token, row.refresh_token = access_token, refresh_token
        row.expires_at = now + dt.timedelta(seconds=expires_in)
        row.refreshed_at = now
        row.generation = (row.generation or 0) + 1
        row.failed_at, row.failure = None, None


def _usable(row: ZaloToken, now: dt.datetime, margin: dt.timedelta) -> bool:
    return row.failed_at is None and row.expires_at - margin > now


class ZaloTokens:
    """The OA's access token for one app, from the database, refreshed when due."""

    def __init__(
        self,
        db: Database,
        *,
        app_id: str,
        secret_key: str,
        oauth_url: str = OAUTH_URL,
        timeout: float = 15.0,
        margin: dt.timedelta = MARGIN,
        grace: float = 5.0,
        on_failure: Callable[[TokenFailure], Awaitable[None]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = db
        self.app_id = app_id
        self._secret_key = secret_key
        self.margin = margin
        self.grace = grace
        self.on_failure = on_failure
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=oauth_url.rstrip("/"), timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _row(self) -> ZaloToken | None:
        async with self.db.reads() as session:
            return await session.get(ZaloToken, self.app_id, populate_existing=True)

    async def access_token(self) -> str:
        """A token that works for at least `margin` more: the stored one, or a fresh one."""
        row = await self._row()
        if row is not None and _usable(row, utcnow(), self.margin):
            return row.access_token
        try:
            return await self.refresh(stale=row.access_token if row is not None else None)
        except ZaloTokenUnavailable:
            if row is not None and row.failed_at is None and row.expires_at > utcnow():
                return row.access_token  # Zalo's OAuth server is down, but this token has minutes left
            raise

    async def refresh(self, stale: str | None = None) -> str:
        """Refresh under the row's lock, unless the token stored is no longer `stale` (someone
        refreshed meanwhile: theirs is used). Raises ZaloTokenFailed or ZaloTokenUnavailable."""
        used = ""
        try:
            async with self.db.transaction() as session:
                row = (
                    await session.execute(
                        select(ZaloToken)
                        .where(ZaloToken.app_id == self.app_id)
                        .with_for_update()
                        .execution_options(populate_existing=True)
                    )
                ).scalar_one_or_none()
                if row is None:
                    raise ZaloTokenFailed(
                        f"no Zalo token stored for app {self.app_id}: authorise the OA and store its tokens"
                    )
                if row.failed_at is not None:
                    raise ZaloTokenFailed(f"the Zalo token of app {self.app_id} failed: {row.failure}")
                if row.access_token != stale and _usable(row, utcnow(), self.margin):
                    return row.access_token
                used = row.refresh_token
                answer = await self._exchange(used)
                now = utcnow()
                row.access_token = str(answer["access_token"])
                row.refresh_token = str(answer["refresh_token"])
                row.expires_at = now + dt.timedelta(seconds=float(answer.get("expires_in") or 90000))
                row.refreshed_at = now
                row.generation += 1
                log.info("Zalo token of app %s refreshed (generation %s)", self.app_id, row.generation)
                return row.access_token
        except _Refused as refused:
            detail, invalid_grant = refused.detail, refused.invalid_grant
        if invalid_grant and (newer := await self._stored_after(used)) is not None:
            return newer
        failure = await self._failed(used, detail)
        raise ZaloTokenFailed(f"Zalo refused the refresh of app {self.app_id}: {detail}", failure)

    async def _stored_after(self, used: str) -> str | None:
        """The access token stored in place of the refresh token `used`, if one comes within `grace`."""
        deadline = time.monotonic() + self.grace
        while True:
            row = await self._row()
            if row is not None and row.refresh_token != used and row.failed_at is None:
                log.info("Zalo token of app %s: refreshed by another process, used", self.app_id)
                return row.access_token
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)

    async def _failed(self, used: str, detail: str) -> TokenFailure | None:
        """Record the failure on the row, once: the first to record it tells (`on_failure`)."""
        now = utcnow()
        async with self.db.transaction() as session:
            result = await session.execute(
                update(ZaloToken)
                .where(ZaloToken.app_id == self.app_id, ZaloToken.refresh_token == used, ZaloToken.failed_at.is_(None))
                .values(failed_at=now, failure=detail[:2000])
                .returning(ZaloToken.generation)
            )
            generation = result.scalar_one_or_none()
        if generation is None:
            return None  # recorded (and told) by another process, or the token changed meanwhile
        failure = TokenFailure(self.app_id, generation, detail, now)
        log.error("Zalo token of app %s: refresh refused (%s); the OA must be authorised again", self.app_id, detail)
        if self.on_failure is not None:
            await self.on_failure(failure)
        return failure

    async def _exchange(self, refresh_token: str) -> dict[str, Any]:
        where = f"Zalo's OAuth server ({self._http.base_url})"
        try:
            response = await self._http.post(
                REFRESH_PATH,
                headers={"secret_key": self._secret_key},
                data={"refresh_token": refresh_token, "app_id": self.app_id, "grant_type": "refresh_token"},
            )
        except httpx.TimeoutException as error:
            raise ZaloTokenUnavailable(f"{where} did not answer within {self.timeout} s") from error
        except httpx.HTTPError as error:
            raise ZaloTokenUnavailable(f"{where}: {type(error).__name__}: {error}") from error
        if response.status_code >= 500:
            raise ZaloTokenUnavailable(f"{where} answered {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ZaloTokenUnavailable(f"{where} answered {response.status_code} without JSON")
        if answer.get("access_token") and answer.get("refresh_token"):
            return answer
        code = answer.get("error")
        words = f"{answer.get('error_name', '')} {answer.get('error_description', '')} {answer.get('error_reason', '')}"
        detail = f"error {code}: {words.strip()}"
        lowered = words.lower()
        raise _Refused(
            detail,
            invalid_grant=code in INVALID_GRANT_CODES or "invalid_grant" in lowered or "refresh token" in lowered,
        )
