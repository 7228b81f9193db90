"""Who is calling: an API account by its bearer token, or (dashboard only) by a signed
session cookie that the login form sets.

The cookie holds the account id and an expiry, signed with HMAC-SHA256 under a key
derived from the link key; nothing secret is in it, and the account is looked up
on every request, so disabling an account ends its sessions.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from approvals.models import ApiAccount
from approvals.people.accounts import AccountRole, authenticate
from service.deps import App, AppState

SESSION_COOKIE = "kehoach_session"
SESSION_TTL = dt.timedelta(hours=8)
_SESSION_VERSION = "1"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API account's token, as printed once by `kehoach account add`.",
)


@dataclass(frozen=True)
class Caller:
    account_id: uuid.UUID
    name: str
    role: AccountRole

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"api:{self.name}"

    @property
    def can_act(self) -> bool:
        return self.role is AccountRole.coordinator


def _caller(account: ApiAccount | None) -> Caller | None:
    if account is None or account.disabled_at is not None:
        return None
    try:
        role = AccountRole(account.role)
    except ValueError:
        return None  # fail closed on a role this code does not know
    return Caller(account.id, account.name, role)


async def caller_from_token(app: AppState, token: str) -> Caller | None:
    async with app.db.reads() as session:
        return _caller(await authenticate(session, token))


async def caller_from_id(app: AppState, account_id: uuid.UUID) -> Caller | None:
    async with app.db.reads() as session:
        return _caller(await session.get(ApiAccount, account_id))


def _unauthenticated() -> HTTPException:
    return HTTPException(
        401, "A valid API token is required (Authorization: Bearer <token>).", headers={"WWW-Authenticate": "Bearer"}
    )


async def require_caller(
    app: App, response: Response, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    if credentials is None:
        raise _unauthenticated()
    caller = await caller_from_token(app, credentials.credentials)
    if caller is None:
        raise _unauthenticated()
    response.headers["Cache-Control"] = "no-store"
    return caller


Reader = Annotated[Caller, Depends(require_caller)]


async def require_coordinator(caller: Reader) -> Caller:
    if not caller.can_act:
        raise HTTPException(403, "This account may read only; coordinators act.")
    return caller


Coordinator = Annotated[Caller, Depends(require_coordinator)]


# The dashboard's session cookie --------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _session_key(secret: bytes) -> bytes:
    """A key of its own, so a session signature can never double as a link token."""
    return hmac.new(secret, b"kehoach-dashboard-session", hashlib.sha256).digest()


def _signature(secret: bytes, body: str) -> str:
    return _b64(hmac.new(_session_key(secret), body.encode(), hashlib.sha256).digest())


def sign_session(secret: bytes, account_id: uuid.UUID, now: dt.datetime) -> str:
    body = f"{_SESSION_VERSION}.{account_id.hex}.{int((now + SESSION_TTL).timestamp())}"
    return f"{body}.{_signature(secret, body)}"


def read_session(secret: bytes, value: str, now: dt.datetime) -> uuid.UUID | None:
    """The account id of a well-signed, unexpired session value, else None."""
    if len(value) > 200:
        return None
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != _SESSION_VERSION:
        return None
    body, signature = ".".join(parts[:3]), parts[3]
    if not hmac.compare_digest(signature.encode(), _signature(secret, body).encode()):
        return None
    try:
        expires, account_id = int(parts[2]), uuid.UUID(hex=parts[1])
    except ValueError:
        return None
    return account_id if now.timestamp() < expires else None


async def dashboard_caller(request: Request, app: AppState, now: dt.datetime) -> Caller | None:
    """A bearer token if one is sent (a wrong one is a 401), else the session cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        caller = await caller_from_token(app, token.strip()) if scheme.lower() == "bearer" else None
        if caller is None:
            raise _unauthenticated()
        return caller
    cookie = request.cookies.get(SESSION_COOKIE)
    account_id = read_session(app.settings.link_secret_bytes(), cookie, now) if cookie else None
    return await caller_from_id(app, account_id) if account_id else None


def set_session_cookie(response: Response, app: AppState, caller: Caller, now: dt.datetime) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        sign_session(app.settings.link_secret_bytes(), caller.account_id, now),
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=app.settings.public_base_url.startswith("https://"),
    )


def clear_session_cookie(response: Response, app: AppState) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=app.settings.public_base_url.startswith("https://"),
    )
