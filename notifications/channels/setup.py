"""The channels a deployment has, made from its settings (KEHOACH_*): ZNS when Zalo is on, SMS
through eSMS when SMS is on. A channel turned on without its secrets is a configuration error,
said at start rather than at the first send."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from approvals.config import Settings
from approvals.db import Database
from approvals.errors import InvalidInput
from notifications.channels.esms import EsmsGateway
from notifications.channels.sms import SmsChannel
from notifications.channels.zalo_token import TokenFailure, ZaloTokens
from notifications.channels.zns import ZnsChannel


class ChannelNotConfigured(InvalidInput):
    """A channel is on but a setting it needs is missing."""


def zalo_tokens(
    settings: Settings, db: Database, *, on_failure: Callable[[TokenFailure], Awaitable[None]] | None = None
) -> ZaloTokens:
    if not settings.zalo_app_id or settings.zalo_secret_key is None:
        raise ChannelNotConfigured("Zalo needs KEHOACH_ZALO_APP_ID and KEHOACH_ZALO_SECRET_KEY")
    return ZaloTokens(
        db,
        app_id=settings.zalo_app_id,
        secret_key=settings.zalo_secret_key.get_secret_value(),
        oauth_url=settings.zalo_oauth_url,
        timeout=settings.channel_timeout,
        on_failure=on_failure,
    )


def zalo_channel(
    settings: Settings, db: Database, *, on_failure: Callable[[TokenFailure], Awaitable[None]] | None = None
) -> ZnsChannel | None:
    """The ZNS channel, or None when Zalo is off."""
    if not settings.zalo_enabled:
        return None
    return ZnsChannel(
        zalo_tokens(settings, db, on_failure=on_failure),
        template_ids=settings.zns_templates,
        base_url=settings.zns_base_url,
        timeout=settings.channel_timeout,
    )


def sms_channel(settings: Settings) -> SmsChannel | None:
    """The SMS channel through eSMS, or None when SMS is off."""
    if not settings.sms_enabled:
        return None
    if settings.esms_api_key is None or settings.esms_secret_key is None or not settings.esms_brandname:
        raise ChannelNotConfigured("SMS needs KEHOACH_ESMS_API_KEY, KEHOACH_ESMS_SECRET_KEY and KEHOACH_ESMS_BRANDNAME")
    return SmsChannel(
        EsmsGateway(
            api_key=settings.esms_api_key.get_secret_value(),
            secret_key=settings.esms_secret_key.get_secret_value(),
            brandname=settings.esms_brandname,
            sms_type=settings.esms_sms_type,
            sandbox=settings.esms_sandbox,
            callback_url=settings.esms_callback_url,
            base_url=settings.esms_base_url,
            timeout=settings.channel_timeout,
        )
    )
