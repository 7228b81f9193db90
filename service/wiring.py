"""Building the long-running parts from settings, the same way for the CLI and the demo."""

from __future__ import annotations

import datetime as dt

from approvals.config import Settings
from approvals.db import Database
from approvals.plan import load_plan
from approvals.routing.submissions import SUBMISSION_LINK
from approvals.tokens import (
    APPROVAL_LINK,
    PROBLEM_LINK,
    QUEUE_LINK,
    REPLY_ADDRESS,
    REPORT_LINK,
    approval_link_resolver,
    problem_link_resolver,
    queue_link_resolver,
    reply_address_resolver,
    report_link_resolver,
)
from notifications.channel_dispatcher import ChannelDispatcher, ShortLinks
from notifications.channels.alerts import coordinators_told, coordinators_told_of_failing
from notifications.channels.base import Channel
from notifications.channels.setup import sms_channel, zalo_channel
from notifications.composing import Resolver
from notifications.delivery_reports import ReportPolicy
from notifications.dispatcher import Dispatcher, RetryPolicy
from notifications.emails import Emails
from notifications.render import shared_renderer
from notifications.smtp import SmtpConfig


def smtp_config(settings: Settings) -> SmtpConfig:
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.mail_from,
        sender_name=settings.mail_from_name,
        local_hostname=settings.local_hostname,
        username=settings.smtp_user,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        tls=settings.smtp_tls.value,
        timeout=settings.smtp_timeout,
    )


def link_resolvers(settings: Settings) -> dict[str, Resolver]:
    """What turns each placeholder into its link or address, only as a message is sent: link
    placeholders into real links, reply-address placeholders into Reply-To addresses (none while
    `reply_domain` is empty). The email and the channel dispatchers use the same."""
    secret = settings.link_secret_bytes()
    return {
        APPROVAL_LINK: approval_link_resolver(secret, settings.public_base_url),
        SUBMISSION_LINK: approval_link_resolver(secret, settings.public_base_url, path="s"),
        PROBLEM_LINK: problem_link_resolver(secret, settings.public_base_url),
        QUEUE_LINK: queue_link_resolver(secret, settings.public_base_url, ttl_seconds=settings.queue_link_hours * 3600),
        REPORT_LINK: report_link_resolver(
            secret, settings.public_base_url, ttl_seconds=settings.report_link_days * 86400
        ),
        REPLY_ADDRESS: reply_address_resolver(
            secret, local_part=settings.reply_local_part, domain=settings.reply_domain
        ),
    }


def _retry(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        lease_seconds=settings.dispatch_lease_seconds,
        # a short lease keeps most of itself for sending
        lease_margin=min(10.0, settings.dispatch_lease_seconds / 4),
    )


def make_dispatcher(settings: Settings, db: Database) -> Dispatcher:
    """The email dispatcher (`link_resolvers` write the links as it sends)."""
    return Dispatcher(
        db,
        smtp_config(settings),
        resolvers=link_resolvers(settings),
        pool_size=settings.smtp_pool_size,
        retry=_retry(settings),
    )


def make_channel_dispatcher(settings: Settings, db: Database) -> ChannelDispatcher:
    """The Zalo and SMS dispatcher, with the channels the settings turn on (none: every queued
    phone message fails as `channel-off`, and the email, queued beside it, reaches the official).
    A refused Zalo token refresh tells the coordinators once, by email; so does a channel whose
    provider fails every message of the last hour (once a day)."""
    emails = Emails.of(load_plan(settings.plan_file), settings, shared_renderer())
    told = coordinators_told(db, emails)
    channels: dict[str, Channel] = {}
    if (zalo := zalo_channel(settings, db, on_failure=told)) is not None:
        channels[zalo.name] = zalo
    if (sms := sms_channel(settings)) is not None:
        channels[sms.name] = sms
    return ChannelDispatcher(
        db,
        channels,
        resolvers=link_resolvers(settings),
        retry=_retry(settings),
        short_links=ShortLinks(settings.link_secret_bytes(), dt.timedelta(days=settings.link_ttl_days)),
        on_failing=coordinators_told_of_failing(db, emails),
        reports=ReportPolicy(
            every=dt.timedelta(seconds=settings.channel_report_poll_seconds),
            within=dt.timedelta(minutes=settings.channel_report_minutes),
        ),
    )
