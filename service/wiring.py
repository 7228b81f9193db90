"""Building the long-running parts from settings, the same way for the CLI and the demo."""

from __future__ import annotations

from approvals.config import Settings
from approvals.db import Database
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
from notifications.dispatcher import Dispatcher, RetryPolicy
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


def make_dispatcher(settings: Settings, db: Database) -> Dispatcher:
    """The dispatcher turns link placeholders into real links, and reply-address placeholders into
    Reply-To addresses (none while `reply_domain` is empty), only as it sends."""
    secret = settings.link_secret_bytes()
    resolvers = {
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
    return Dispatcher(
        db,
        smtp_config(settings),
        resolvers=resolvers,
        pool_size=settings.smtp_pool_size,
        retry=RetryPolicy(
            lease_seconds=settings.dispatch_lease_seconds,
            # a short lease keeps most of itself for sending
            lease_margin=min(10.0, settings.dispatch_lease_seconds / 4),
        ),
    )
