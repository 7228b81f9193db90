"""Applying an emailed reply (issue 23), on every kind of stage of the shipped plan that asks for a
decision: the request is sent by the real dispatcher, the reply written as a mail client writes it
to the Reply-To it carried, applied once through the page's own decision code, and its receipt
sent saying what was understood. SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from approvals.db import utcnow
from approvals.routing.decisions import decide
from approvals.statuses import AssignmentStatus, Outcome
from approvals.tokens import derive_token, hash_reply_token, reply_token_of
from notifications.models import ReplyHandling
from tests.notifications.reply_mail import PLAN, REPLY_DOMAIN, Mailroom, message_id_of, reply


@dataclass(frozen=True)
class Kind:
    """A stage kind, as the shipped plan has one: how its step opens, and whose reply decides it."""

    name: str
    stage_id: str
    approver: str | None  # None: the one official asked first (a fan-out branch's head)
    cycle_kind: str = "annual"
    subject: str = ""
    data: dict = field(default_factory=dict)
    asked: int = 1  # approvers asked at once


KINDS = [
    Kind("approval", "ppc_resolution", "ppc_vice_chair", cycle_kind="problem_escalation"),
    Kind("submission's review", "dic_direction", "dcst_director"),
    Kind("fan-out branch", "outlet_plans", None, subject="lang_son_newspaper"),
    # above the threshold the PPC vice-chair decides too (both must approve): the vice-chair replies
    Kind("budget", "finance_allocation", "ppc_vice_chair", data={"amount": 2_500_000_000}, asked=2),
    Kind("annual report of a unit", "annual_report", "dost_director", subject="pc_cao_loc"),
    Kind("consolidation", "consolidated_report", "dost_director"),
]
ANSWERS = [
    # (first lines of the reply, outcome, what the receipt says was understood, the comment recorded)
    ("Đồng ý", Outcome.approve, "Đã ghi nhận: Đồng ý", ""),
    ("Từ chối: số liệu quý IV chưa đủ.", Outcome.reject, "Đã ghi nhận: Từ chối", "số liệu quý IV chưa đủ."),
    (
        "yeu cau chinh sua\nBổ sung kinh phí cho Đài Phát thanh.",
        Outcome.request_changes,
        "Đã ghi nhận: Yêu cầu chỉnh sửa",
        "Bổ sung kinh phí cho Đài Phát thanh.",
    ),
]


async def approver_of(mailroom: Mailroom, request, kind: Kind) -> str:
    pending = [a for a in await mailroom.assignments(request.id) if a.status == AssignmentStatus.pending.value]
    assert len(pending) == kind.asked, [a.official_id for a in pending]
    if kind.approver is None:
        return pending[0].official_id
    assert kind.approver in {a.official_id for a in pending}
    return kind.approver


@pytest.mark.parametrize(
    ("first_lines", "outcome", "understood", "comment"), ANSWERS, ids=["approve", "reject", "request-changes"]
)
@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
async def test_a_reply_decides_each_kind_of_step_once_as_the_page_does(
    mailroom, kind, first_lines, outcome, understood, comment
):
    request = await mailroom.open(kind.stage_id, cycle_kind=kind.cycle_kind, subject=kind.subject, data=kind.data)
    official_id = await approver_of(mailroom, request, kind)
    official = PLAN.official(official_id)
    asked = await mailroom.request_email(request, official_id)
    local, _, domain = str(official.email).partition("@")
    raw = reply(asked, first_lines, sender=f"{local.upper()}@{domain}", name=official.name)  # case is not identity
    message_id = message_id_of(raw)

    applied = await mailroom.apply(raw, asked)
    assert (applied.handling, applied.outcome, applied.answered) == (ReplyHandling.applied, outcome, False)
    assert applied.request_id == request.id and applied.message_id == message_id

    [decision] = await mailroom.decisions(request.id)
    assert (decision.official_id, decision.outcome, decision.comment) == (official_id, outcome.value, comment)
    [audited] = await mailroom.audit(request.id)
    assert audited.data["channel"] == "email reply" and audited.data["message_id"] == message_id
    assert audited.data["official"] == official_id and audited.actor == f"official:{official_id}"
    [row] = await mailroom.inbound_of(message_id)
    token = reply_token_of(str(asked["Reply-To"]), local_part="duyet", domain=REPLY_DOMAIN)
    assert (row.outcome, row.answered, row.from_address) == ("applied", False, str(official.email).lower())
    assert row.reply_token_hash == hash_reply_token(token) and token not in str(row.__dict__)

    sent = await mailroom.deliver()
    [receipt] = [r for kind_, r in sent if kind_ == "receipt"]
    assert receipt.envelope_to == [str(official.email)]
    assert receipt.text.startswith(understood) and f"<strong>{understood}</strong>" in receipt.html
    assert comment in receipt.text
    assert "reply_answer" not in [kind_ for kind_, _ in sent]

    # The same message delivered again (a second receiver, a retried LMTP delivery): nothing.
    kinds_before = await mailroom.outbox_kinds()
    again = await mailroom.apply(raw, asked)
    assert (again.handling, again.answered) == (ReplyHandling.duplicate, False)
    assert len(await mailroom.decisions(request.id)) == 1 and len(await mailroom.audit(request.id)) == 1
    assert await mailroom.outbox_kinds() == kinds_before and len(await mailroom.inbound_of(message_id)) == 1


async def test_the_page_s_decisions_record_their_channel_too(mailroom):
    """The same decision code, from the link: the audit row says "link" and names no message."""
    request = await mailroom.open("dic_direction")
    [assignment] = await mailroom.assignments(request.id)
    async with mailroom.db.transaction() as session:
        await decide(
            session,
            token=derive_token(mailroom.settings.link_secret_bytes(), assignment.id, assignment.token_generation),
            outcome=Outcome.approve,
            comment="",
            now=utcnow(),
            plan=PLAN,
            secret=mailroom.settings.link_secret_bytes(),
        )
    [audited] = await mailroom.audit(request.id)
    assert audited.data["channel"] == "link" and "message_id" not in audited.data
    await mailroom.deliver()
