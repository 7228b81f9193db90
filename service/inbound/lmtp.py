"""The LMTP server: the local mail relay (Postfix's `lmtp:` transport) delivers replies to it.

LMTP (RFC 2033) is SMTP for the last hop: the relay keeps the message queued until the server
answers for each recipient, after DATA, in the order of the RCPTs. So a recipient gets its 250
only once the handler returned for it; a handler that raises (or runs past the handle timeout)
gets a 451, and the relay keeps the message and delivers it again later. Only our reply
addresses (`duyet+<token>@<reply domain>`, `approvals.tokens.reply_token_of`) are taken: any
other recipient is refused at RCPT (550), as is a message over the size limit (552).

It listens on 127.0.0.1 by default: LMTP has no authentication, and only the relay on this
machine is meant to speak it. Two servers (two machines, each behind its relay) may take the
same reply: the handler's deduplication on Message-ID makes it count once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from approvals.errors import InvalidLink
from approvals.tokens import reply_token_of
from service.inbound import Handler, message_id_of

log = logging.getLogger("kehoach.inbound.lmtp")


class _Recipients:
    """aiosmtpd's handler: the RCPT and DATA hooks."""

    def __init__(self, server: LmtpServer):
        self.server = server

    async def handle_RCPT(
        self, smtp: LMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        try:
            reply_token_of(address, local_part=self.server.local_part, domain=self.server.domain)
        except InvalidLink:
            log.info("refused recipient %s: not a reply address", address)
            return f"550 5.1.1 <{address}>: no such reply address"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, smtp: LMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        message_id = message_id_of(raw)
        answers = []
        for recipient in envelope.rcpt_tos:
            try:
                await asyncio.wait_for(self.server.handle(raw, recipient), self.server.handle_timeout)
            except Exception as exc:  # the handler's fault or a timeout: the relay tries again later
                self.server.stats["failed"] += 1
                log.error(
                    "%s for %s: not handled (%s: %s): 451, the relay will try again",
                    message_id,
                    recipient,
                    type(exc).__name__,
                    exc,
                    exc_info=not isinstance(exc, TimeoutError),
                )
                answers.append(f"451 4.3.0 <{recipient}>: not applied now, try again later")
            else:
                self.server.stats["handled"] += 1
                log.info("%s for %s: handled, 250", message_id, recipient)
                answers.append(f"250 2.0.0 <{recipient}>: applied")
        # One reply line per accepted recipient (RFC 2033 4.2): aiosmtpd writes what we return.
        return "\r\n".join(answers)


class LmtpServer:
    def __init__(
        self,
        handle: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 8024,
        local_part: str,
        domain: str,
        max_bytes: int = 10 * 1024 * 1024,
        handle_timeout: float = 120.0,
        hostname: str = "kehoach.local",
    ):
        self.handle = handle
        self.host, self.port = host, port
        self.local_part, self.domain = local_part, domain
        self.max_bytes, self.handle_timeout, self.hostname = max_bytes, handle_timeout, hostname
        self.stats = {"handled": 0, "failed": 0}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        recipients = _Recipients(self)

        def protocol() -> Any:
            return LMTP(
                recipients,
                data_size_limit=self.max_bytes,
                hostname=self.hostname,
                ident="kehoach inbound",
                loop=loop,
            )

        self._server = await loop.create_server(protocol, host=self.host, port=self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # the port given, or the one chosen for 0
        log.info("taking replies over LMTP on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
