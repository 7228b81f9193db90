"""The local mail catcher still shows what the dispatcher sends: Vietnamese subject, both
parts, the resolved link, an invite."""

from __future__ import annotations

import datetime as dt
import mailbox
import smtplib
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from notifications.catcher import REPLIES_FOLDER, MailCatcher, read_inbox
from notifications.composing import placeholder
from notifications.invites import invite
from notifications.render import Renderer
from service.prefect_server import free_port
from tests.notifications.helpers import (
    ADDRESS,
    DOMAIN,
    NAME,
    dispatcher,
    link_for,
    queue,
)


async def test_the_catcher_files_what_the_dispatcher_sends(database, keys, nothing_due, tmp_path):
    port = free_port()
    catcher = MailCatcher(tmp_path / "mail", port=port)
    catcher.start()
    try:
        email = Renderer().render(
            "reminder",
            "vi",
            title="Giám đốc",
            name=NAME,
            cycle="Năm 2027",
            stage="2. Phê duyệt kế hoạch",
            agency="Sở Khoa học và Công nghệ",
            due="17:00 ngày 29/11/2026 (giờ Việt Nam)",
            summary="",
            link=placeholder("approval_link", "abc"),
            problem="",
        )
        attachment = invite(
            request_id=uuid.uuid4(),
            assignee_id=uuid.uuid4(),
            domain=DOMAIN,
            due=dt.datetime(2026, 11, 29, 17, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")),
            summary="Hạn phê duyệt",
            organizer=("Hệ thống kehoach", "kehoach@lang-son.example"),
            attendee=(NAME, ADDRESS),
            sequence=1,
        )
        queued = await queue(database, keys(), email, attachments=[attachment])
        assert await dispatcher(database, port).run_once() == 1
    finally:
        catcher.stop()

    [caught] = read_inbox(tmp_path / "mail")
    assert caught.message["Message-ID"] == queued.message_id
    assert caught.message["Subject"] == email.subject
    assert link_for("abc") in caught.text and "\r" not in caught.text
    assert link_for("abc") in caught.html
    assert NAME in caught.text and NAME in caught.html
    assert caught.attachments == [("invite.ics", "text/calendar", attachment.data)]


def test_a_message_to_a_reply_address_is_also_filed_into_the_replies_folder(tmp_path):
    """The mailbox the reply addresses deliver to, which the catcher's own IMAP serves
    (tests/service/test_local_mailbox.py): the replies only, the inbox everything."""
    port = free_port()
    catcher = MailCatcher(tmp_path / "mail", port=port, reply_domain="Reply.Lang-Son.example")
    catcher.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            for to, subject in (
                ("chuyenvien@lang-son.example", "thư"),
                ("duyet+abc@reply.lang-son.example", "Re: trả lời"),
            ):
                message = EmailMessage()
                message["From"], message["To"], message["Subject"] = "giamdoc@lang-son.example", to, subject
                message.set_content("Đồng ý")
                client.send_message(message)
    finally:
        catcher.stop()
    assert sorted(m.message["Subject"] for m in read_inbox(tmp_path / "mail")) == ["Re: trả lời", "thư"]
    replies = mailbox.Maildir(str(tmp_path / "mail"), create=False).get_folder(REPLIES_FOLDER)
    assert [message_from_bytes(m.as_bytes(), policy=policy.default)["Subject"] for m in replies] == ["Re: trả lời"]
