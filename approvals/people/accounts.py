"""API accounts for coordinators and viewers: a random token shown once, its SHA-256 kept."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from enum import Enum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.models import ApiAccount

TOKEN_PREFIX = "kh_"


class AccountRole(str, Enum):
    coordinator = "coordinator"  # reads everything, reminds, reassigns, escalates, cancels, delegates
    viewer = "viewer"  # reads only


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_account(
    session: AsyncSession, *, name: str, role: AccountRole, by: str, now: dt.datetime
) -> tuple[ApiAccount, str]:
    """Returns the account and its token; the token is not stored and cannot be shown again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    account = ApiAccount(name=name, role=role.value, token_hash=_digest(token), created_at=now)
    session.add(account)
    await session.flush()
    await audit.append(
        session,
        actor=by,
        action="account.created",
        entity="api_account",
        entity_id=str(account.id),
        data={"name": name, "role": role.value},
    )
    return account, token


async def authenticate(session: AsyncSession, token: str) -> ApiAccount | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = _digest(token)
    account = (await session.execute(select(ApiAccount).where(ApiAccount.token_hash == digest))).scalar()
    if account is None or account.disabled_at is not None or not hmac.compare_digest(account.token_hash, digest):
        return None
    return account
