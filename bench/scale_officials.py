"""The officials of bench/scale.py: the mailbox their emails arrive in (an SMTP server that keeps
what it accepts, and when), the links they follow from it, and the plan they act in, shipped or
grown with synthetic communes to a given number of branches."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/[as]/[A-Za-z0-9_-]+)")
ASK, SUBMIT, RESUBMIT = "Cần phê duyệt", "Cần gửi nội dung", "Cần chỉnh sửa"
DIRECTOR = "giamdoc.skhcn@lang-son.example"  # the lead agency's, who decides every unit's report


@dataclass
class Mail:
    to: list[str]
    subject: str
    text: str
    message_id: str
    at: float


class Mailbox:
    """An aiosmtpd server that keeps what it accepts, with the time it arrived."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        from service.prefect_server import free_port

        self.port = free_port()
        self.mails: list[Mail] = []
        self.lock = threading.Lock()
        self.used: set[str] = set()
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
                body = message.get_body(preferencelist=("plain",))
                with box.lock:
                    box.mails.append(
                        Mail(
                            list(envelope.rcpt_tos),
                            str(message["Subject"] or ""),
                            body.get_content() if body else "",
                            str(message["Message-ID"]),
                            time.monotonic(),
                        )
                    )
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, server_hostname="bench-smtp")

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def find(self, predicate, timeout: float = 300) -> Mail:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                for mail in self.mails:
                    if predicate(mail):
                        return mail
            if time.monotonic() > deadline:
                raise SystemExit(f"an expected email did not come within {timeout:.0f} s")
            time.sleep(0.05)

    def link(self, address: str, subject: str, stage: str, year: int) -> str:
        """A link of a fresh email to `address`, taken once."""

        def fresh(mail: Mail) -> bool:
            return (
                address in mail.to
                and subject in mail.subject
                and stage in mail.subject
                and str(year) in mail.subject
                and any(x not in self.used for x in LINK.findall(mail.text))
            )

        while True:
            mail = self.find(fresh)
            with self.lock:
                links = [x for x in LINK.findall(mail.text) if x not in self.used]
                if links:
                    self.used.add(links[0])
                    return links[0]

    def count(self, predicate) -> int:
        with self.lock:
            return sum(1 for mail in self.mails if predicate(mail))


def approve(client, link: str) -> None:
    assert client.get(link).status_code == 200
    answer = client.post(link, data={"outcome": "approve", "comment": ""})
    if answer.status_code != 200:
        raise SystemExit(f"a decision was refused: {answer.status_code}")


def submit(client, link: str, **fields: str) -> None:
    assert client.get(link).status_code == 200
    answer = client.post(link, data=fields)
    if answer.status_code != 200:
        raise SystemExit(f"a submission was refused: {answer.status_code} {answer.text[:200]}")


@dataclass
class Size:
    name: str
    plan_file: Path
    units: dict[str, str] = field(default_factory=dict)  # unit -> its reporting officer's address


def make_plan(folder: Path, size: str) -> Size:
    """The shipped plan, or it with synthetic communes until stage 7 has `size` branches."""
    import datetime as dt

    import yaml

    from approvals.clock.deadlines import local_day
    from approvals.plan import load_plan
    from approvals.routing.steps import stage_of

    shipped = ROOT / "plans" / "lang-son.yaml"
    if size == "real":
        plan_file = shipped
    else:
        data = yaml.safe_load(shipped.read_text(encoding="utf-8"))
        plan = load_plan(shipped)
        stage = stage_of(plan, "annual", "annual_report")
        have = plan.branches(stage, local_day(plan, dt.datetime.now(dt.UTC)))
        for i in range(max(int(size) - len(have), 0)):
            data["agencies"].append(
                {
                    "id": f"pc_bench_{i:04d}",
                    "kind": "local_government",
                    "name": {"vi": f"UBND xã Thử nghiệm {i}", "en": f"Bench Commune {i}"},
                }
            )
        if int(size) < len(have):  # fewer than the province has: the first units of the real stage
            (report,) = [
                s for c in data["cycles"] if c["id"] == "annual" for s in c["stages"] if s["id"] == "annual_report"
            ]
            report["acting_kinds"], report["acting_agencies"] = [], have[: int(size)]
        plan_file = folder / f"plan-{size}.yaml"
        plan_file.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    plan = load_plan(plan_file)
    stage = stage_of(plan, "annual", "annual_report")
    today = local_day(plan, dt.datetime.now(dt.UTC))
    units = {
        unit: str(plan.holders(stage.requester, today, unit=unit)[0].email) for unit in plan.branches(stage, today)
    }
    return Size(size, plan_file, units)


def walk_to_the_budget_decision(client, mailbox: Mailbox, year: int) -> None:
    """Stages 1-5 of the year's cycle, everything approved, up to the budget awaiting its
    approval: each official acting from the link in the email they received."""
    submit(
        client,
        mailbox.link("baochi.svhttdl@lang-son.example", SUBMIT, "1. ", year),
        text="Định hướng",
        field_themes="Kinh tế xanh",
        field_channels="Báo, đài",
        field_calendar="Quý I–IV",
    )
    approve(client, mailbox.link("giamdoc.svhttdl@lang-son.example", ASK, "1. ", year))
    submit(client, mailbox.link("truongban.tgdv@lang-son.example", SUBMIT, "2. ", year), text="Định hướng của Ban")
    approve(client, mailbox.link(DIRECTOR, ASK, "2. ", year))  # acknowledged
    submit(client, mailbox.link("tonghop.stc@lang-son.example", SUBMIT, "3. ", year), text="Tài liệu")
    approve(client, mailbox.link("giamdoc.stc@lang-son.example", ASK, "3. ", year))
    outlets = {
        "bientap.baodai@lang-son.example": "tonggiamdoc.baodai@lang-son.example",
        "bientap.hoivhnt@lang-son.example": "chutich.hoivhnt@lang-son.example",
        "bientap.ttdt@lang-son.example": "cong.ttdt@lang-son.example",
    }
    for editor in outlets:
        submit(client, mailbox.link(editor, SUBMIT, "4. ", year), text="Kế hoạch sản xuất")
    for head in outlets.values():
        approve(client, mailbox.link(head, ASK, "4. ", year))
    for _ in outlets:
        approve(client, mailbox.link(DIRECTOR, ASK, "4. ", year))
    submit(
        client,
        mailbox.link("ngansach.stc@lang-son.example", SUBMIT, "5. ", year),
        text="Kinh phí",
        amount="900.000.000",
    )
