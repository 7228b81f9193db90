"""The province's mail relay, in small, for the reply tests: an SMTP server that hands each
message it accepts to an LMTP server, as Postfix's `lmtp:` transport hands mail to
`kehoach inbound`, and answers the sender only with what the LMTP server answered (250 once
it took the message, its own refusal otherwise), so a refused reply stays with the sender."""

from __future__ import annotations

import asyncio
import smtplib

from aiosmtpd.controller import Controller

from service.prefect_server import free_port


class _ToLmtp:
    def __init__(self, lmtp_port: int):
        self.lmtp_port = lmtp_port

    async def handle_DATA(self, server, session, envelope) -> str:
        def deliver() -> dict:
            # The tests' side: the product sends with aiosmtplib, which speaks no LMTP.
            with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=30) as lmtp:
                return lmtp.sendmail(envelope.mail_from, envelope.rcpt_tos, envelope.original_content)

        try:
            refused = await asyncio.to_thread(deliver)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return f"{code} {text.decode(errors='replace')}"
        except (OSError, smtplib.SMTPException) as exc:
            return f"451 the LMTP server did not take it: {exc}"
        return "451 some recipients were refused" if refused else "250 OK: handed over by LMTP"


class LmtpRelay:
    """`start()`, then send to 127.0.0.1:`port` over SMTP; `stop()`."""

    def __init__(self, lmtp_port: int):
        self.port = free_port()
        self.controller = Controller(
            _ToLmtp(lmtp_port), hostname="127.0.0.1", port=self.port, server_hostname="relay", ready_timeout=10
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
