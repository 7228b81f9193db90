"""How fast one `kehoach inbound` applies emailed replies, next to decisions POSTed to `kehoach web`, in one run.

    python bench/replies.py [--requests 200] [--rounds 3] [--concurrency 4] [--postgres URL]

On a freshly migrated database holding open requests of stage E (the PPC resolves a problem: one
approver, whose assignment has its link and its reply address), each round decides `--requests`
requests by each path, one path after the other, each on requests of its own:

  POST   decisions POSTed to `kehoach web`'s app (uvicorn, one worker, in a child process) by a
         load process on --concurrency keep-alive connections, as bench/web.py does; every
         answer must be 200 with "Đã ghi nhận"
  LMTP   replies handed to one `kehoach inbound --no-imap --lmtp` process by --concurrency LMTP
         clients, as a mail relay delivers (each waits for its 250, given once the reply is applied)
  IMAP   replies APPENDed to a mailbox of a Dovecot of the bench's own (started as the suite starts
         it, tests/support/dovecot.py) and read by one `kehoach inbound --imap --no-lmtp` process
         (IDLE, then for each reply a claim, a fetch, the handler and a move); without Dovecot the
         row is skipped, saying why

A reply is what a phone's mail app sends: "Đồng ý" above a Gmail-style quote of the request, From
the approver, to the request's reply address, with a trusted MX's Authentication-Results (DKIM
and DMARC pass). The replies are composed before the clock starts; it runs from the first
hand-over to the last `inbound_reply` row committed (the table polled every 20 ms). The POST
row's clock is the load's, from its first request to its last answer.

After the rounds the bench checks that every request was decided exactly once, that every reply
has its `inbound_reply` row and that row says `applied`, and that no assignment was decided twice;
it exits non-zero, saying what was wrong, otherwise. It prints the medians over the rounds, each
reply path's ratio to the POST path of the same round, and the CPU of the process serving the row
(share of one core). Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import imaplib
import os
import secrets
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import DONE, HOST, CpuMeter, Database, Link, Server, decisions, load, median, open_steps  # noqa: E402

KEHOACH = str(Path(sys.executable).parent / "kehoach")
REPLY_DOMAIN = "phanhoi.lang-son.example"
MX = "mx.lang-son.example"  # the receiving host whose Authentication-Results are trusted
POLL = 0.02  # seconds between looks at the inbound_reply table
STALLED = 60.0  # seconds without a new row, once every reply was handed over, before the bench gives up
ROWS = {
    "post": "POST path: kehoach web, POST /a/{token}",
    "lmtp": "reply path, LMTP: kehoach inbound --lmtp",
    "imap": "reply path, IMAP: kehoach inbound --imap",
}


# ------------------------------------------------------------------------ the replies


def compose(link: Link, number: int) -> bytes:
    """The approver's "Đồng ý" to the request's email, as the province's MX received it."""
    domain = link.approver_email.rpartition("@")[2]
    reply = EmailMessage(policy=email.policy.SMTP)
    reply["Authentication-Results"] = f"{MX}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"
    reply["From"] = link.approver_email
    reply["To"] = reply_address_of(link)
    reply["Subject"] = "Re: [Đề nghị phê duyệt] UBND tỉnh xử lý vướng mắc"
    reply["Message-ID"] = make_msgid(idstring=f"bench{number}", domain=domain)
    reply["In-Reply-To"] = f"<{link.assignment_id}@lang-son.example>"
    quoted = "\n".join(
        "> " + line
        for line in (
            "Kính gửi Phó Chủ tịch UBND tỉnh,",
            "",
            "Xin ông/bà xem xét và phê duyệt bước sau.",
            "Bước: UBND tỉnh xử lý vướng mắc",
            "Phê duyệt hoặc từ chối tại:",
            f"https://kehoach.lang-son.example/a/{link.token}",
            "",
            'Hoặc trả lời email này: "Đồng ý" hoặc "Từ chối", kèm ý kiến nếu có.',
        )
    )
    reply.set_content(
        f"Đồng ý\n\nVào Th 2, 7 thg 12, 2026 lúc 09:12 Kế hoạch <kehoach@lang-son.example> đã viết:\n{quoted}\n"
    )
    return reply.as_bytes()


def message_id(raw: bytes) -> str:
    """As the replies' table keeps it: without the folding whitespace of a long header."""
    return str(email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"]).strip()


# ------------------------------------------------------------------------ `kehoach inbound` (a process)


class Inbound:
    """One `kehoach inbound` process, as ops start it, on the bench's database."""

    def __init__(self, kind: str, database: Database, secret: str, folder: Path, **settings: str):
        self.kind, self.folder = kind, folder
        self.log = folder / f"inbound-{kind}.log"
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("KEHOACH_")}
        self.env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            KEHOACH_DATABASE_URL=database.url,
            KEHOACH_DATA_DIR=str(folder),
            KEHOACH_LINK_SECRET=secret,
            KEHOACH_REPLY_DOMAIN=REPLY_DOMAIN,
            KEHOACH_REPLY_TRUSTED_AUTHSERV_IDS=MX,
            **settings,
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: str) -> None:
        """Start it and wait until its log says `ready`."""
        flags = ["--no-imap", "--lmtp"] if self.kind == "lmtp" else ["--imap", "--no-lmtp"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [KEHOACH, "inbound", *flags], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
            )
        deadline = time.monotonic() + 60
        while ready not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"kehoach inbound ({self.kind}) did not start:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> str | None:
        """Stop it (SIGTERM); what was wrong if it did not end cleanly."""
        if self.process is None:
            return None
        self.process.terminate()
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        return None if code == 0 else f"kehoach inbound ({self.kind}) exited with {code}:\n{self.tail()}"


# ------------------------------------------------------------------------ the rows


def post_row(args, web: Server, links: list[Link]) -> tuple[float, float]:
    """Decisions a second POSTed to `kehoach web`, and its CPU."""
    work = [("POST", f"/a/{link.token}", b"outcome=approve&comment=", web.origin) for link in links]
    meter = CpuMeter(server=web.process.pid or 0)
    meter.start()
    seconds, statuses, _latencies, unexpected = load(web.port, work, args.concurrency, DONE)
    cpu = meter.stop()["server"]
    if statuses != {200: len(links)} or unexpected:
        raise SystemExit(f"POST path: answers {statuses}, {unexpected} without {DONE.decode()!r}")
    return len(links) / seconds, cpu


def reply_row(database: Database, inbound: Inbound, senders: list, count: int) -> tuple[float, float]:
    """Replies applied a second: each sender (a function of a barrier and an error list) hands its
    share over in a thread of its own; from the first hand-over to the last row committed."""
    errors: list[str] = []
    barrier = threading.Barrier(len(senders) + 1)
    threads = [threading.Thread(target=send, args=(barrier, errors), daemon=True) for send in senders]
    assert inbound.process is not None
    meter = CpuMeter(server=inbound.process.pid)
    with database.connect() as poll:
        rows = "SELECT count(*) FROM inbound_reply"
        before = last = poll.execute(rows).fetchone()[0]
        for thread in threads:
            thread.start()
        meter.start()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            raise SystemExit(f"{inbound.kind}: the replies could not be handed over: {errors[:3]}") from None
        started = changed = time.perf_counter()
        while (seen := poll.execute(rows).fetchone()[0]) - before < count:
            now = time.perf_counter()
            if errors:
                raise SystemExit(f"{inbound.kind}: handing the replies over failed: {errors[:3]}\n{inbound.tail()}")
            if seen != last:
                last, changed = seen, now
            elif now - changed > STALLED and not any(thread.is_alive() for thread in threads):
                raise SystemExit(
                    f"{inbound.kind}: {seen - before} of {count} replies recorded, none in {STALLED:.0f} s"
                    f"\n{inbound.tail()}"
                )
            time.sleep(POLL)
        finished = time.perf_counter()
    cpu = meter.stop()["server"]
    for thread in threads:
        thread.join(60)
    if errors:
        raise SystemExit(f"{inbound.kind}: handing the replies over failed: {errors[:3]}")
    return count / (finished - started), cpu


def lmtp_senders(port: int, messages: list[tuple[Link, bytes]], concurrency: int) -> list:
    """One LMTP client a connection, as a relay delivers: the message, then its 250, then the next."""

    def sender(share: list[tuple[Link, bytes]]):
        def send(barrier: threading.Barrier, errors: list[str]) -> None:
            try:
                with smtplib.LMTP(HOST, port, timeout=120) as relay:
                    barrier.wait()
                    for link, raw in share:
                        to = reply_address_of(link)
                        if refused := relay.sendmail(link.approver_email, [to], raw):
                            errors.append(f"{to}: {refused}")
            except (OSError, smtplib.SMTPException, threading.BrokenBarrierError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                barrier.abort()

        return send

    return [sender(messages[i::concurrency]) for i in range(concurrency)]


def imap_sender(dovecot, messages: list[bytes]):
    """One IMAP client APPENDing every reply to INBOX, one after the other."""

    def send(barrier: threading.Barrier, errors: list[str]) -> None:
        try:
            imap = dovecot.client()
            try:
                barrier.wait()
                for raw in messages:
                    status, answer = imap.append('"INBOX"', "", None, raw)
                    if status != "OK":
                        errors.append(f"APPEND: {status} {answer}")
                        return
            finally:
                imap.logout()
        except (OSError, imaplib.IMAP4.error, threading.BrokenBarrierError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            barrier.abort()

    return send


def reply_address_of(link: Link) -> str:
    from approvals.tokens import reply_address

    return reply_address(link.reply_token, local_part="duyet", domain=REPLY_DOMAIN)


# ------------------------------------------------------------------------ the checks


async def problems(url: str, links: list[Link], message_ids: list[str]) -> list[str]:
    """What is wrong with the decisions and the replies once every row ran; [] when nothing is."""
    from sqlalchemy import func, select

    from approvals.db import Database as Db
    from approvals.models import ApprovalRequest, Decision
    from notifications.models import InboundReply

    per_assignment = await decisions(url)
    db = Db(url)
    try:
        async with db.sessions() as session:
            counted = select(Decision.request_id, func.count()).group_by(Decision.request_id)
            per_request = Counter(dict((await session.execute(counted)).all()))
            status = dict((await session.execute(select(ApprovalRequest.id, ApprovalRequest.status))).all())
            replies = Counter((await session.execute(select(InboundReply.message_id, InboundReply.outcome))).all())
    finally:
        await db.dispose()
    found = []
    if twice := [a for a, n in per_assignment.items() if n > 1]:
        found.append(f"{len(twice)} assignment(s) decided more than once, e.g. {twice[0]}")
    if undecided := [link for link in links if per_request[link.request_id] != 1]:
        found.append(
            f"{len(undecided)} of {len(links)} requests not decided exactly once, e.g. {undecided[0].request_id}"
        )
    if pending := [link for link in links if status.get(link.request_id) == "pending"]:
        found.append(f"{len(pending)} requests still pending, e.g. {pending[0].request_id}")
    if (total := sum(per_assignment.values())) != len(links):
        found.append(f"{total} decisions recorded for {len(links)} requests")
    outcome = {mid: out for mid, out in replies}
    if missing := [mid for mid in message_ids if mid not in outcome]:
        found.append(f"{len(missing)} of {len(message_ids)} replies have no inbound_reply row, e.g. {missing[0]}")
    if not_applied := Counter(outcome[mid] for mid in message_ids if outcome.get(mid, "applied") != "applied"):
        found.append(f"replies not applied: {dict(not_applied)}")
    if len(replies) != len(message_ids):
        found.append(f"{len(replies)} inbound_reply rows for {len(message_ids)} replies")
    return found


# ------------------------------------------------------------------------ the run


def report(rounds: list[dict[str, tuple[float, float]]], requests: int, skipped: str | None) -> None:
    print()
    print(f"  median of {len(rounds)} round(s), {requests} requests a row; ratio to the POST path of the same round")
    print(f"  {'':44} {'decided/s':>9} {'x POST (min-max)':>18} {'server CPU %':>13}")
    for key, name in ROWS.items():
        if key not in rounds[0]:
            print(f"  {name:44} skipped: {skipped}")
            continue
        ratios = [r[key][0] / r["post"][0] for r in rounds]
        spread = f"{median(ratios):5.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        rate, cpu = median([r[key][0] for r in rounds]), median([r[key][1] for r in rounds])
        print(f"  {name:44} {rate:9.1f} {spread:>18} {cpu:13.0f}")


def dovecot_missing() -> str | None:
    """Why the IMAP row cannot run here, or None."""
    from tests.support.dovecot import Dovecot

    return None if Dovecot.available() else "Dovecot is not installed (no `dovecot` on PATH nor /usr/sbin/dovecot)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests decided per row and round (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every row; medians printed (default 3)")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="HTTP connections of the POST load, and LMTP clients (default 4)"
    )
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)

    from service.prefect_server import free_port

    folder = Path(tempfile.mkdtemp(prefix="kehoach-bench-replies-"))
    database = Database(args.postgres, folder)
    secret = secrets.token_urlsafe(48)
    web = Server("kehoach", database.url, secret, folder)
    lmtp_port = free_port()
    lmtp = Inbound("lmtp", database, secret, folder, KEHOACH_LMTP_ENABLED="true", KEHOACH_LMTP_PORT=str(lmtp_port))
    skipped, dovecot, imap = dovecot_missing(), None, None
    rounds, links, message_ids, wrong = [], [], [], []
    try:
        web.start()
        lmtp.start(ready="taking replies over LMTP")
        if skipped is None:
            from tests.support.dovecot import PASSWORD, USER, Dovecot

            dovecot = Dovecot()
            dovecot.start()
            imap = Inbound(
                "imap",
                database,
                secret,
                folder,
                KEHOACH_IMAP_HOST=HOST,
                KEHOACH_IMAP_PORT=str(dovecot.port),
                KEHOACH_IMAP_TLS="none",
                KEHOACH_IMAP_USER=USER,
                KEHOACH_IMAP_PASSWORD=PASSWORD,
            )
            imap.start(ready="reading INBOX on")
        print(
            f"kehoach web (uvicorn, one worker) and one kehoach inbound per reply path; {args.concurrency} "
            f"connections (POST, LMTP); database: {'PostgreSQL' if args.postgres else 'SQLite file'}; "
            f"{args.rounds} round(s)",
            flush=True,
        )
        if skipped:
            print(f"  the IMAP row is skipped: {skipped}", flush=True)
        for number in range(args.rounds):
            paths = ["post", "lmtp"] + (["imap"] if imap else [])
            opened = {
                path: asyncio.run(open_steps(database.url, secret, args.requests, f"{number}-{path}")) for path in paths
            }
            replies = {
                path: [(link, compose(link, len(message_ids) + i)) for i, link in enumerate(opened[path])]
                for path in paths[1:]
            }
            for path in paths:
                links += opened[path]
            message_ids += [message_id(raw) for sent in replies.values() for _link, raw in sent]
            rows = {"post": post_row(args, web, opened["post"])}
            rows["lmtp"] = reply_row(
                database, lmtp, lmtp_senders(lmtp_port, replies["lmtp"], args.concurrency), args.requests
            )
            if imap:
                raws = [raw for _link, raw in replies["imap"]]
                rows["imap"] = reply_row(database, imap, [imap_sender(dovecot, raws)], args.requests)
            rates = ", ".join(f"{key} {rate:.1f}" for key, (rate, _cpu) in rows.items())
            print(f"  round {number + 1}: {rates} decided/s", flush=True)
            rounds.append(rows)
        wrong = asyncio.run(problems(database.url, links, message_ids))
    finally:
        web.stop()
        wrong += [why for inbound in (lmtp, imap) if inbound and (why := inbound.stop())]
        if dovecot is not None:
            dovecot.remove()
        database.drop()
        shutil.rmtree(folder, ignore_errors=True)
    report(rounds, args.requests, skipped)
    print()
    if wrong:
        print("  WRONG:\n" + "\n".join(f"  - {why}" for why in wrong))
        raise SystemExit(1)
    print(
        f"  every request was decided exactly once ({len(links)} requests); every reply's inbound_reply row is "
        f"applied ({len(message_ids)} replies); no decision twice."
    )


if __name__ == "__main__":
    main()
