"""Where our answer to an official's emailed reply goes in their mail client: under that reply.

The answer to a reply that was not applied, and the receipt of one that was, carry In-Reply-To
(the reply's Message-ID) and References (the reply's own References, then its Message-ID: RFC
5322 3.6.4), as mail clients write them, so Outlook, Apple Mail and the phones' clients thread
them under the reply. Gmail also wants the subject of the conversation: the answer is sent as
"Re: " and the subject of our email the reply answered (found in the outbox by the Message-IDs
the reply names), never with the subject the reply carries, which anyone could have written. A
reply that names none of our emails keeps the answer's own subject, threaded by its headers
alone; a reply without a usable Message-ID is answered unthreaded.
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.models import OutboxMessage
from notifications.outbox import MAX_SUBJECT, MESSAGE_ID, Thread

MAX_REFERENCES = 10  # the reply's own and at most nine it names: enough to thread, bounded in size


def _named(message: EmailMessage, header: str) -> list[str]:
    try:
        values = [str(value) for value in message.get_all(header, [])]
    except (AttributeError, TypeError, ValueError):  # a header the parser could not read
        return []
    return MESSAGE_ID.findall(" ".join(values))


async def reply_thread(session: AsyncSession, message: EmailMessage, message_id: str) -> Thread | None:
    """The thread of an answer to this reply (`message_id` as the replies' table keeps it)."""
    if not MESSAGE_ID.fullmatch(message_id):
        return None  # no Message-ID of its own (kept as a digest): nothing to answer under
    named = [found for found in dict.fromkeys(_named(message, "References") or _named(message, "In-Reply-To"))]
    named = [found for found in named if found != message_id]
    if len(named) > MAX_REFERENCES - 1:  # the thread's first and its latest, as clients trim it
        named = [named[0], *named[-(MAX_REFERENCES - 2) :]]
    subject = None
    if named:
        subject = (
            await session.execute(
                select(OutboxMessage.subject)
                .where(OutboxMessage.message_id.in_(named))
                .order_by(OutboxMessage.created_at)
                .limit(1)
            )
        ).scalar()
    return Thread((*named, message_id), f"Re: {subject}"[:MAX_SUBJECT] if subject else None)
