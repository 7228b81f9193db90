"""`kehoach inbound` as a role: the IMAP reader, the LMTP server, or both, until told to stop.

Safe to run twice at once, on one machine or several, as every role is: each reader claims a
message before it hands it over (`service.inbound.imap`), and whatever reaches the handler twice
(two LMTP servers behind two relays, a claim released after its reader died) counts once, as the
handler deduplicates on Message-ID. An outage of the mailbox stops nothing: the reader waits
with back-off and reconnects; the relay keeps what the LMTP server did not accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from approvals.config import Settings
from service.inbound import Handler
from service.inbound.imap import ImapConfig, ImapReader, Outage
from service.inbound.imap_client import ImapUnavailable, connect
from service.inbound.lmtp import LmtpServer

log = logging.getLogger("kehoach.inbound")


def imap_config(settings: Settings) -> ImapConfig:
    return ImapConfig(
        host=settings.imap_host,
        port=settings.imap_port,
        tls=settings.imap_tls.value,
        ca_file=str(settings.imap_ca_file) if settings.imap_ca_file else None,
        user=settings.imap_user,
        password=settings.imap_password.get_secret_value() if settings.imap_password else "",
        folder=settings.imap_folder,
        done_folder=settings.imap_done_folder,
        timeout=settings.imap_timeout,
        poll_interval=settings.imap_poll_interval,
        idle_seconds=settings.imap_idle_seconds,
        claim_seconds=settings.imap_claim_seconds,
        handle_timeout=settings.inbound_handle_timeout,
        max_bytes=settings.inbound_max_bytes,
        reply_local_part=settings.reply_local_part,
        reply_domain=settings.reply_domain,
        alert_after=settings.inbound_alert_after,
    )


def lmtp_server(settings: Settings, handle: Handler) -> LmtpServer:
    return LmtpServer(
        handle,
        host=settings.lmtp_host,
        port=settings.lmtp_port,
        local_part=settings.reply_local_part,
        domain=settings.reply_domain,
        max_bytes=settings.inbound_max_bytes,
        handle_timeout=settings.inbound_handle_timeout,
        hostname=settings.local_hostname,
    )


async def serve(
    settings: Settings,
    handle: Handler,
    *,
    imap: bool,
    lmtp: bool,
    stop: asyncio.Event,
    on_outage: Outage | None = None,
) -> None:
    """Run the parts asked for until `stop` is set; a reply being handled finishes first.
    `on_outage` is told when the mailbox has been unreachable for a while."""
    async with asyncio.TaskGroup() as group:
        if imap:
            group.create_task(ImapReader(imap_config(settings), handle, on_outage).run(stop))
        if lmtp:
            group.create_task(lmtp_server(settings, handle).serve(stop))


async def check_imap(settings: Settings) -> tuple[bool, str]:
    """Whether the mailbox can be logged into and its folder opened, and what was found; a
    failure names the server it was asked of."""
    config = imap_config(settings)
    if not config.host:
        return False, "no mailbox configured (KEHOACH_IMAP_HOST)"
    where = f"{config.host}:{config.port}"

    def failed(exc: ImapUnavailable) -> tuple[bool, str]:
        return False, str(exc) if where in str(exc) else f"{where}: {exc}"

    try:
        connection = await connect(
            config.host, config.port, tls=config.tls, timeout=config.timeout, ca_file=config.ca_file
        )
    except ImapUnavailable as exc:
        return failed(exc)
    try:
        await connection.login(config.user, config.password)
        await connection.select(config.folder)
        idle = "IDLE" if connection.offers("IDLE") else "no IDLE: polled"
        claim = "claims by CONDSTORE" if connection.offers("CONDSTORE") else "no CONDSTORE: the handler dedupes"
    except ImapUnavailable as exc:
        connection.close()
        return failed(exc)
    with contextlib.suppress(ImapUnavailable):
        await connection.logout()
    return True, f"{config.folder} on {where} ({idle}; {claim})"


async def check_lmtp(settings: Settings) -> tuple[bool, str]:
    """Whether a running LMTP server greets on its address (a `kehoach inbound --lmtp` alive)."""
    where = f"{settings.lmtp_host}:{settings.lmtp_port}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(settings.lmtp_host, settings.lmtp_port), settings.imap_timeout
        )
    except (TimeoutError, OSError) as exc:
        return False, f"nothing answers on {where}: {type(exc).__name__}"
    try:
        greeting = await asyncio.wait_for(reader.readline(), settings.imap_timeout)
        writer.write(b"QUIT\r\n")
    except (TimeoutError, OSError) as exc:
        return False, f"{where} did not greet: {type(exc).__name__}"
    finally:
        writer.close()
    if not greeting.startswith(b"220"):
        return False, f"{where} greeted with {greeting[:60]!r}"
    return True, f"LMTP answers on {where}"
