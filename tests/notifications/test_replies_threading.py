"""Our answer to an official's emailed reply threads under that reply in their mail client (issue
23): the receipt of an applied reply, and the one answer to a reply that was not applied, carry
In-Reply-To (the reply's Message-ID), References (what the reply named, then the reply) and the
subject "Re: " + the subject of our email the reply answered. Read from the headers of the email
as the real dispatcher delivered it over SMTP. SQLite and PostgreSQL."""

from __future__ import annotations

import re

from approvals.db import utcnow
from approvals.statuses import Outcome
from approvals.tokens import derive_token
from notifications.deciding import decide_and_tell
from notifications.models import ReplyHandling
from tests.notifications.reply_mail import PLAN, Mailroom, message_id_of, reply

APPROVER = "dcst_director"
STRANGER = "mallory@gmail.example"
LINK_PATH = "https://kehoach.lang-son.example/a/"


def official_address(official_id: str = APPROVER) -> str:
    official = PLAN.official(official_id)
    assert official is not None
    return str(official.email)


async def asked(mailroom: Mailroom):
    request = await mailroom.open("dic_direction")
    return request, await mailroom.request_email(request, APPROVER)


async def delivered(mailroom: Mailroom, kind: str):
    """The one email of `kind` the dispatcher sent, as the SMTP server received it."""
    [received] = [received for sent_kind, received in await mailroom.deliver() if sent_kind == kind]
    return received


def ids(header) -> list[str]:
    return re.findall(r"<[^<>\s]+>", str(header or ""))


def assert_threaded_under(received, raw: bytes, *, before: list[str]) -> None:
    message = received.message
    assert ids(message["In-Reply-To"]) == [message_id_of(raw)]
    assert ids(message["References"]) == [*before, message_id_of(raw)]
    assert message["Auto-Submitted"] == "auto-generated" and "Reply-To" not in message  # nothing answers it


async def test_the_receipt_of_an_applied_reply_is_threaded_under_it(mailroom):
    _, email = await asked(mailroom)
    raw = reply(email, "Đồng ý", sender=official_address())
    assert (await mailroom.apply(raw, email)).handling is ReplyHandling.applied

    receipt = await delivered(mailroom, "receipt")
    assert receipt.envelope_to == [official_address()]
    assert_threaded_under(receipt, raw, before=[str(email["Message-ID"])])
    assert receipt.subject == f"Re: {email['Subject']}"
    assert receipt.text.startswith("Đã ghi nhận: Đồng ý")
    # The calendar's cancellation still rides with it.
    assert [part.get_content_type() for part in receipt.message.iter_attachments()] == ["text/calendar"]


async def test_a_receipt_of_a_decision_on_the_page_is_not_threaded(mailroom):
    request, _ = await asked(mailroom)
    [assignment] = await mailroom.assignments(request.id)
    async with mailroom.db.transaction() as session:
        await decide_and_tell(
            session,
            emails=mailroom.emails,
            settings=mailroom.settings,
            token=derive_token(mailroom.settings.link_secret_bytes(), assignment.id, assignment.token_generation),
            outcome=Outcome.approve,
            comment="",
            now=utcnow(),
        )
    receipt = await delivered(mailroom, "receipt")
    assert "In-Reply-To" not in receipt.message and "References" not in receipt.message
    assert not receipt.subject.startswith("Re:")


async def test_the_answer_to_a_reply_that_failed_a_gate_is_threaded_under_it(mailroom):
    """The approver's reply without a DMARC pass: the answer, with the page's link, under the reply."""
    request, email = await asked(mailroom)
    raw = reply(email, "Đồng ý", sender=official_address(), authenticated=False)
    assert (await mailroom.apply(raw, email)).handling is ReplyHandling.not_authenticated

    answer = await delivered(mailroom, "reply_answer")
    assert answer.envelope_to == [official_address()] and LINK_PATH in answer.text
    assert_threaded_under(answer, raw, before=[str(email["Message-ID"])])
    assert answer.subject == f"Re: {email['Subject']}"
    assert await mailroom.decisions(request.id) == []


async def test_the_answer_never_takes_the_subject_the_reply_wrote(mailroom):
    """A stranger's reply naming none of our emails, with a subject of its own making: the answer
    keeps its own subject (what we sent is all it says), threaded by its headers alone."""
    _, email = await asked(mailroom)
    bait = "Re: Trúng thưởng 500 triệu, bấm vào đây"
    raw = reply(
        email,
        "Đồng ý",
        sender=STRANGER,
        extra={"Subject": bait, "In-Reply-To": "<elsewhere@mail.example>", "References": "<elsewhere@mail.example>"},
    )
    assert (await mailroom.apply(raw, email)).handling is ReplyHandling.not_the_approver

    answer = await delivered(mailroom, "reply_answer")
    assert answer.envelope_to == [STRANGER] and LINK_PATH not in answer.text
    assert_threaded_under(answer, raw, before=["<elsewhere@mail.example>"])
    assert "Trúng thưởng" not in answer.subject and not answer.subject.startswith("Re:") and answer.subject


async def test_a_long_or_broken_references_header_is_bounded_and_kept_to_message_ids(mailroom):
    _, email = await asked(mailroom)
    chain = [f"<earlier-{n}@mail.example>" for n in range(30)]
    named = " ".join([str(email["Message-ID"]), "not-an-id", *chain, '<"quoted space"@x>'])
    raw = reply(email, "Đồng ý", sender=STRANGER, extra={"References": named})
    await mailroom.apply(raw, email)

    answer = await delivered(mailroom, "reply_answer")
    # The thread's first (our request) and its latest, ten in all with the reply's own.
    assert ids(answer.message["References"]) == [str(email["Message-ID"]), *chain[-8:], message_id_of(raw)]
    assert answer.subject == f"Re: {email['Subject']}"


async def test_a_reply_without_a_message_id_is_answered_unthreaded(mailroom):
    _, email = await asked(mailroom)
    raw = reply(email, "Đồng ý", sender=STRANGER)
    raw = re.sub(rb"(?m)^Message-ID:.*\r?\n", b"", raw)
    outcome = await mailroom.apply(raw, email)
    assert outcome.answered and outcome.message_id.startswith("sha256:")

    answer = await delivered(mailroom, "reply_answer")
    assert "In-Reply-To" not in answer.message and "References" not in answer.message
