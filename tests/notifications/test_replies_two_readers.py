"""Two `kehoach inbound` IMAP readers on one mailbox, as two machines run them, with the real
handler (issue 23): a reply to each kind of step of the shipped plan that asks for a decision,
each delivered twice by the province's MX, is applied exactly once in all: one decision, one
audit row, one receipt per step; every copy is filed and the folder read empties. The readers'
claims narrow the race; the handler's dedupe on Message-ID closes it (service/inbound/imap.py
says why the claim alone cannot). SQLite and PostgreSQL, over TLS as in production."""

from __future__ import annotations

import asyncio

from notifications.models import ReplyHandling
from service.inbound.imap_client import encode_folder
from tests.notifications.reply_mail import PLAN, Mailroom, message_id_of, reply
from tests.notifications.test_replies_applying import KINDS, approver_of
from tests.notifications.test_replies_over_imap_tls import Inbound, folders, inbound_settings
from tests.service.test_inbound_imap import folder_until

__all__ = ["folders"]  # the fixture, used by name


async def test_two_readers_apply_each_kind_s_reply_once_however_often_it_is_delivered(
    mailroom: Mailroom, dovecot, folders
):
    asked = []
    for kind in KINDS:
        request = await mailroom.open(kind.stage_id, cycle_kind=kind.cycle_kind, subject=kind.subject, data=kind.data)
        official_id = await approver_of(mailroom, request, kind)
        official = PLAN.official(official_id)
        email = await mailroom.request_email(request, official_id)
        asked.append((request, official_id, reply(email, "Đồng ý", sender=str(official.email), name=official.name)))
    settings = inbound_settings(mailroom, dovecot, folders, mode="tls", ca_file=dovecot.ca_file)

    async with Inbound(mailroom, settings) as first, Inbound(mailroom, settings) as second:
        for _ in range(2):  # each reply delivered twice
            for _, _, raw in asked:
                await asyncio.to_thread(dovecot.append, raw, encode_folder(folders[0]))
        await folder_until(dovecot, folders[0], 0)
    assert first.outages == second.outages == []
    filed = await asyncio.to_thread(dovecot.messages, encode_folder(folders[1]))
    assert {message_id_of(raw) for _, _, raw in filed} == {message_id_of(raw) for _, _, raw in asked}

    for request, official_id, raw in asked:
        [decision] = await mailroom.decisions(request.id)
        assert (decision.official_id, decision.outcome) == (official_id, "approve")
        [audited] = await mailroom.audit(request.id)
        assert audited.data["channel"] == "email reply" and audited.data["message_id"] == message_id_of(raw)
        [row] = await mailroom.inbound_of(message_id_of(raw))
        assert row.outcome == ReplyHandling.applied.value
    sent = await mailroom.deliver()
    receipts = sorted(received.envelope_to[0] for kind, received in sent if kind == "receipt")
    assert receipts == sorted(str(PLAN.official(official_id).email) for _, official_id, _ in asked)
