"""Deciding by replying to the email, end to end on real parts (issue 23): the stack (Prefect
server and worker, `kehoach web` and `kehoach dispatch`, the SMTP server) and `kehoach inbound`
as its own process, reading a real IMAP server (Dovecot) and listening for the mail relay over
LMTP. The DCST's director answers "Đồng ý" to the orientation's email from a phone; the reply
lands in the mailbox; the step is decided through the page's own path (its audit row says
"email reply"), the director's receipt says what was understood, and the run goes on to the
Board's guidance, which the lead agency's director acknowledges by a reply sent over SMTP to the
province's relay, which hands it over by LMTP."""

from __future__ import annotations

import email.policy
import json
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import text

from service.inbound.imap_client import encode_folder
from service.prefect_server import free_port
from tests.support.dovecot import PASSWORD, USER
from tests.support.officials import ASK, SUBMIT, Inbox, address, submit, submit_orientation
from tests.support.relay import LmtpRelay
from tests.support.stack import TRUSTED_MX as MX

pytestmark = pytest.mark.e2e
KEHOACH = str(Path(sys.executable).parent / "kehoach")


def _reply(asked, *, sender: str, answer: str) -> bytes:
    """What a phone's mail app sends: the answer on top, the request quoted below (Gmail's
    Vietnamese quote header), to the request's Reply-To, as the province's MX received it."""
    reply = EmailMessage(policy=email.policy.SMTP)
    reply["Authentication-Results"] = (
        f"{MX}; dkim=pass header.d=lang-son.example; dmarc=pass header.from=lang-son.example"
    )
    reply["From"] = sender
    reply["To"] = asked.message["Reply-To"]
    reply["Subject"] = "Re: " + asked.subject
    reply["Message-ID"] = make_msgid(domain="lang-son.example")
    reply["In-Reply-To"] = asked.message["Message-ID"]
    quoted = "\n".join("> " + line for line in asked.text.splitlines()[:20])
    reply.set_content(
        f"{answer}\n\nVào Th 2, 7 thg 12, 2026 lúc 09:12 Kế hoạch <kehoach@lang-son.example> đã viết:\n{quoted}\n"
    )
    return reply.as_bytes()


def _quoted_folder(name: str) -> str:
    return '"' + encode_folder(name).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _inbound(stack, dovecot, *, folder: str, done: str, lmtp_port: int, workdir: Path) -> subprocess.Popen:
    env = {
        **stack.env,
        "KEHOACH_IMAP_HOST": "127.0.0.1",
        "KEHOACH_IMAP_PORT": str(dovecot.port),
        "KEHOACH_IMAP_TLS": "none",
        "KEHOACH_IMAP_USER": USER,
        "KEHOACH_IMAP_PASSWORD": PASSWORD,
        "KEHOACH_IMAP_FOLDER": folder,
        "KEHOACH_IMAP_DONE_FOLDER": done,
        "KEHOACH_LMTP_ENABLED": "true",
        "KEHOACH_LMTP_PORT": str(lmtp_port),
    }
    log = open(workdir / "inbound.log", "ab")
    return subprocess.Popen(
        [KEHOACH, "inbound"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
    )


def _decided_by_reply(stack, year: int, stage: str) -> list[dict]:
    """The audit rows of the decisions on a stage of the year that came by an emailed reply."""
    with stack.reading() as conn:
        requests = {
            str(r).replace("-", "")
            for (r,) in conn.execute(
                text(
                    "SELECT r.id FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
                    "WHERE c.period = :p AND r.stage = :s"
                ),
                {"p": str(year), "s": stage},
            )
        }
        audit = conn.execute(text("SELECT entity_id, data FROM audit_event WHERE action = 'decision.recorded'")).all()
    found = []
    for entity_id, data in audit:
        data = json.loads(data) if isinstance(data, str) else data
        if entity_id.replace("-", "") in requests and data.get("channel") == "email reply":
            found.append(data)
    return found


def test_a_step_is_decided_by_replying_to_its_email_through_imap_and_lmtp(stack, dovecot, tmp_path):
    year = stack.year(19)
    folder, done = f"Phản hồi {year} {stack.sandbox.backend}", f"Đã xử lý {year} {stack.sandbox.backend}"
    imap = dovecot.client()
    try:
        assert imap.create(_quoted_folder(folder))[0] == "OK"
    finally:
        imap.logout()
    lmtp_port = free_port()
    inbound = _inbound(stack, dovecot, folder=folder, done=done, lmtp_port=lmtp_port, workdir=tmp_path)
    try:
        run_id = stack.start_cycle(year)
        inbox = Inbox(stack, year)
        submit_orientation(inbox)
        director = address("dcst_director")
        asked = stack.smtp.wait_for(
            lambda r: director in r.envelope_to and ASK in r.subject and "1. " in r.subject and str(year) in r.subject
        )
        assert asked.message["Reply-To"].startswith("duyet+")
        first = _reply(asked, sender=director, answer="Đồng ý. Nội dung định hướng đầy đủ.")
        dovecot.append(first, folder=encode_folder(folder))

        # The reply is applied once: the director's receipt says what was understood, the run
        # goes on and asks the Board for its guidance.
        receipt = stack.smtp.wait_for(
            lambda r: director in r.envelope_to and "Đã ghi nhận: Đồng ý" in r.text and "Nội dung định hướng" in r.text,
            timeout=90,
        )
        assert "Nội dung định hướng đầy đủ." in receipt.text
        guidance = inbox.link("propaganda_head", SUBMIT, "2. ")
        (recorded,) = _decided_by_reply(stack, year, "dic_direction")
        assert recorded["outcome"] == "approve" and recorded["comment"] == "Nội dung định hướng đầy đủ."
        deadline = time.monotonic() + 30
        while not (moved := dovecot.messages(encode_folder(done))) and time.monotonic() < deadline:
            time.sleep(0.2)  # the move follows the commit: wait on it, bounded
        assert len(moved) == 1 and dovecot.messages(encode_folder(folder)) == []

        # 2. The lead agency's acknowledgement comes by SMTP through the province's relay, which
        # hands it to kehoach inbound over LMTP.
        submit(guidance, text="Định hướng của Ban: ưu tiên kinh tế xanh")
        lead = address("dost_director")
        asked = stack.smtp.wait_for(
            lambda r: lead in r.envelope_to and ASK in r.subject and "2. " in r.subject and str(year) in r.subject
        )
        second = _reply(asked, sender=lead, answer="Duyệt")
        relay = LmtpRelay(lmtp_port)
        relay.start()
        try:  # a phone's mail app, as the tests' client (the product sends with aiosmtplib)
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=60) as phone:
                refused = phone.sendmail(lead, [asked.message["Reply-To"]], second)
        finally:
            relay.stop()
        assert refused == {}
        stack.wait_for_stages(year, {"dic_direction": "done", "propaganda_guidance": "done"}, timeout=90)
        assert len(_decided_by_reply(stack, year, "propaganda_guidance")) == 1
        ids = [email.message_from_bytes(m, policy=email.policy.default)["Message-ID"] for m in (first, second)]
        with stack.reading() as conn:
            handled = conn.execute(
                text("SELECT message_id, outcome, from_address FROM inbound_reply WHERE message_id IN (:a, :b)"),
                {"a": ids[0], "b": ids[1]},
            ).all()
        assert sorted(handled) == sorted([(ids[0], "applied", director), (ids[1], "applied", lead)])
        stack.wait_for_state(run_id, {"Suspended"})  # waiting on the materials now
    finally:
        inbound.terminate()
        inbound.wait(timeout=30)
    assert inbound.returncode == 0, (tmp_path / "inbound.log").read_text()[-3000:]
