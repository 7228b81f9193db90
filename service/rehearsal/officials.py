"""Simulated officials: each reads the emails that reach their address in the mail catcher,
and acts through the links in them as a person would (open the page, then send its form).
Nothing is written to the database.

Each acts after a random delay inside their step's window, on the rehearsal's clock. Some act
only after the due time (their reminders and the escalation come first); some reporting units,
and the Propaganda Board when asked, stay silent; some decisions ask for changes. The shares are
set per rehearsal, and the same seed plays the same year. The roles the person plays are left
alone: their emails wait in the inbox for them.

An official with several of a stage's decisions waiting (the director who receives each unit's
report, the lead agency's director with every outlet's plan) decides them from their queue, as
a person with 89 reports would: the link opens the queue, the stage's steps are ticked, and one
confirmation sends back the share the seed picks and another approves the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from approvals.clock.deadlines import clock_of, step_due
from approvals.db import utcnow
from approvals.errors import InvalidInput
from approvals.models import Cycle
from approvals.plan import Plan
from approvals.plan.stages import Stage, StageKind, TimeoutPolicy
from notifications.catcher import CaughtMessage, read_new
from service.queue import MAX_BULK
from service.queue_session import QUEUE_PATH
from service.rehearsal.forms import PageForm, read_form

log = logging.getLogger(__name__)
LINK = re.compile(r"(https?://[^\s<>\"]+/[as]/[A-Za-z0-9_-]{16,})")
REMINDER_TAGS = ("[Nhắc việc]", "[Reminder]")
ESCALATION_TAGS = ("[Chuyển đến đồng chí", "[Escalated to you]")
RESUBMISSION_TAGS = ("[Cần chỉnh sửa]", "[Changes requested]")
SEND_BACK_COMMENT = "Đề nghị bổ sung số liệu và kết quả cụ thể rồi gửi lại."
DUE_VI = re.compile(r"(?:Hạn xử lý|hạn):? (\d{2}):(\d{2}) ngày (\d{2})/(\d{2})/(\d{4})")
DUE_EN = re.compile(r"(?:Due|due):? (\d{2}) ([A-Z][a-z]{2}) (\d{4}), (\d{2}):(\d{2})")
TRIES = 6  # a page that answers 429 or 5xx is tried again, waiting longer each time
SENDING_BACK = ("request_changes", SEND_BACK_COMMENT, "sent back")  # a bulk decision: outcome, comment, tally
APPROVING = ("approve", "", "approved")
AMOUNTS = ("850.000.000", "1.200.000.000", "1.600.000.000", "2.400.000.000")  # the last needs the PPC too


@dataclass(frozen=True)
class Shares:
    """What share of simulated officials do what (each between 0 and 1)."""

    send_back: float = 0.1  # a decision asks for changes
    silent: float = 0.05  # a reporting unit (or the Board, asked for guidance) never answers
    late: float = 0.1  # an official acts only after the due time, once reminded and escalated

    def __post_init__(self) -> None:
        for name in ("send_back", "silent", "late"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidInput(f"the {name.replace('_', '-')} share is a number from 0 to 1")


@dataclass
class Link:
    url: str
    official: str
    stage: Stage
    escalated: bool
    resubmission: bool
    received: dt.datetime
    due: dt.datetime
    done: bool = False

    @property
    def form(self) -> bool:
        """A submission's form link (/s/), rather than a decision's (/a/)."""
        return "/s/" in self.url


@dataclass
class SimulatedOfficials:
    plan: Plan
    cycle: Cycle
    maildir: Path
    played: frozenset[str]  # official ids the person plays: left alone
    shares: Shares = Shares()
    seed: int = 0
    at_once: int = 4  # pages open at the same moment
    for_you: Callable[[str, str], None] | None = None  # told (official, subject) when a played role is asked
    transport: httpx.AsyncBaseTransport | None = None  # how pages are fetched: the network unless given
    tally: Counter = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)
    links: list[Link] = field(default_factory=list)
    silent: set[tuple[str, str]] = field(default_factory=set)  # (official, stage) that stay silent
    late: set[tuple[str, str]] = field(default_factory=set)  # (official, stage) that act after the due time

    def __post_init__(self) -> None:
        self.by_address = {str(o.email).lower(): o for o in self.plan.officials}
        self.stages = [stage for kind in self.plan.cycles for stage in kind.stages]  # the months' cycles too
        self.clock = clock_of(self.plan, self.cycle)
        self.slots = asyncio.Semaphore(self.at_once)
        self.tasks: set[asyncio.Task] = set()
        self.desks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    def _luck(self, *key: str) -> random.Random:
        """The same draw for the same official and step, whatever the order emails arrive in."""
        return random.Random(":".join((str(self.seed), *key)))

    async def run(self, stop: asyncio.Event, poll: float = 0.5) -> None:
        async with httpx.AsyncClient(timeout=60, follow_redirects=False, transport=self.transport) as http:
            self.http = http
            while not stop.is_set():
                for email in read_new(self.maildir, self.seen):
                    self.read(email)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll)
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def read(self, email: CaughtMessage) -> None:
        """An email reached the catcher: schedule what its reader does with each link in it."""
        subject = str(email.message["Subject"] or "")
        stage = next((s for s in self.stages if s.name.vi in subject or s.name.en in subject), None)
        urls = LINK.findall(email.text)
        if stage is None or not urls:
            return
        for address in re.findall(r"[\w.+-]+@[\w.-]+", str(email.message["To"] or "")):
            official = self.by_address.get(address.lower())
            if official is None:
                continue
            if official.id in self.played:
                self.tally["left for you"] += len(urls)
                if self.for_you is not None:
                    self.for_you(official.id, subject)
                continue
            now = utcnow()
            reminder = any(t in subject for t in REMINDER_TAGS)
            escalated = any(t in subject for t in ESCALATION_TAGS)
            resubmission = any(t in subject for t in RESUBMISSION_TAGS)
            for url in urls:
                link = Link(url, official.id, stage, escalated, resubmission, now, self._due(email.text, stage, now))
                if reminder or link.form:
                    self._supersede(link)
                self.links.append(link)
                self._schedule(link)

    def _supersede(self, new: Link) -> None:
        """A reminder's link replaces the one before it, whose token it rotated (opening it would
        only count as a failed link). An official has one form per stage at a time, so a form link
        replaces any before it; a director asked to decide each unit's report gets a decision
        link per unit, so only a reminder replaces those."""
        for link in self.links:
            if (link.official, link.stage.id, link.form) == (new.official, new.stage.id, new.form) and not link.done:
                link.done = True
                self.tally["superseded"] += 1

    def _due(self, email_text: str, stage: Stage, received: dt.datetime) -> dt.datetime:
        """The step's due time as its email states it (on the rehearsal's calendar), on the wall
        clock; where the email names none, when a step opened now would fall due."""
        found = DUE_VI.search(email_text)
        if found:
            hour, minute, day, month, year = map(int, found.groups())
        elif found := DUE_EN.search(email_text):
            day_text, name, year_text, hour_text, minute_text = found.groups()
            day, year, hour, minute = int(day_text), int(year_text), int(hour_text), int(minute_text)
            month = dt.datetime.strptime(name, "%b").month
        else:
            return step_due(self.plan, stage, self.cycle, received)
        planned = dt.datetime(year, month, day, hour, minute, 59, tzinfo=self.plan.tz)
        return self.clock.wall(planned)

    def _schedule(self, link: Link) -> None:
        luck = self._luck(link.official, link.stage.id, link.url[-12:])
        steady = self._luck(link.official, link.stage.id)  # silence and lateness belong to the person
        if self._may_stay_silent(link) and steady.random() < self.shares.silent:
            self.silent.add((link.official, link.stage.id))
            self.tally["silent"] = len(self.silent)  # steps, not emails: a reminder finds them silent again
            log.info("%s %s: stays silent", link.official, link.stage.id)
            return
        due = link.due
        if not link.escalated and steady.random() < self.shares.late:
            self.late.add((link.official, link.stage.id))
            self.tally["late"] = len(self.late)
            grace = link.stage.escalation_days or 7
            when = max(due, link.received) + self.clock.days(luck.uniform(0.1, 0.3) * grace)  # before it expires
        else:
            when = link.received + (due - link.received) * luck.uniform(0.05, 0.6)
        log.info("%s %s: will act at %s", link.official, link.stage.id, self.clock.dated(when).isoformat())
        task = asyncio.create_task(self._act_at(link, when, luck))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _may_stay_silent(self, link: Link) -> bool:
        """Only a step the year can do without: one unit's report, or guidance the Board may let lapse."""
        return link.stage.kind is StageKind.report or link.stage.on_timeout is TimeoutPolicy.proceed

    async def _act_at(self, link: Link, when: dt.datetime, luck: random.Random) -> None:
        await asyncio.sleep(max((when - utcnow()).total_seconds(), 0))
        for attempt in range(TRIES):
            if link.done:
                return
            async with self.slots:
                try:
                    if await self._act(link, luck):
                        return
                except httpx.HTTPError as exc:  # the web service slow or restarting: a person tries again later
                    log.info("%s %s: could not open the page (%s)", link.official, link.stage.id, exc)
            await asyncio.sleep(min(2.0**attempt, 30.0))
        self.tally["gave up"] += 1
        log.info("%s %s: gave up after %d tries", link.official, link.stage.id, TRIES)

    async def _act(self, link: Link, luck: random.Random) -> bool:
        """Open the page and send its form; False when the service asked to come back later."""
        if not link.form and len(self._waiting(link)) > 1:
            async with self.desks[(link.official, link.stage.id)]:  # one queue session at a time per stage
                decided = True if link.done else await self._decide_from_queue(link)
            if decided is not None:
                return decided
        page = await self.http.get(link.url)
        if page.status_code == 429 or page.status_code >= 500:
            return False
        link.done = True
        form = read_form(page.text) if page.status_code == 200 else None
        if form is None:  # decided meanwhile by another, closed, or past its expiry
            self.tally["found closed"] += 1
            log.info("%s %s: found closed (%s)", link.official, link.stage.id, page.status_code)
            return True
        if form.decides:
            data, done = self._decision(form, luck)
        else:
            data, done = self._submission(form, link, luck)
        answer = await self.http.post(link.url, data=data)
        self.tally[done if answer.status_code == 200 else "refused"] += 1
        log.info("%s %s: %s (%s)", link.official, link.stage.id, done, answer.status_code)
        return True

    def _waiting(self, link: Link) -> list[Link]:
        """The official's decision links of the link's stage not yet acted on (the link among them)."""
        return [
            other
            for other in self.links
            if not other.done and not other.form and (other.official, other.stage.id) == (link.official, link.stage.id)
        ]

    async def _decide_from_queue(self, link: Link) -> bool | None:
        """The stage's waiting steps decided from the official's queue, in a session of its own
        (one official's cookie never reaches another's requests). False when the service asked
        to come back later; None when the link no longer opens the queue (its page says why)."""
        async with httpx.AsyncClient(timeout=60, follow_redirects=False, transport=self.transport) as http:
            opened = await http.post(f"{link.url}/queue")
            if opened.status_code == 429 or opened.status_code >= 500:
                return False
            if opened.status_code != 303:
                return None
            site = link.url.split("/a/")[0]
            page = await http.get(f"{site}{QUEUE_PATH}", params=self._queue_filter(link))
            if page.status_code != 200:
                return False
            queue = read_form(page.text) or PageForm()
            back = [s for s in queue.steps if self._sends_back(link.official, s, queue)]
            approve = [s for s in queue.steps if s not in back]
            for chosen, decision in ((back, SENDING_BACK), (approve, APPROVING)):
                for first in range(0, len(chosen), MAX_BULK):  # one confirmation takes so many at most
                    if not await self._decide_together(http, site, queue, chosen[first : first + MAX_BULK], decision):
                        return False
        for other in self._waiting(link):
            other.done = True
        if not queue.steps:  # all decided meanwhile by another, closed, or past their expiry
            self.tally["found closed"] += 1
        log.info("%s %s: decided %d from the queue", link.official, link.stage.id, len(queue.steps))
        return True

    def _queue_filter(self, link: Link) -> dict[str, str]:
        """The link's stage, in the rehearsed cycle where the stage is one of its kind's (a month's
        stages are decided across the months' cycles)."""
        in_cycle = link.stage in self.plan.cycle(self.cycle.kind).stages
        return {"stage": link.stage.id} | ({"cycle": str(self.cycle.id)} if in_cycle else {})

    def _sends_back(self, official: str, step: str, queue: PageForm) -> bool:
        return "request_changes" in queue.choices and self._luck(official, step).random() < self.shares.send_back

    async def _decide_together(
        self, http: httpx.AsyncClient, site: str, queue: PageForm, chosen: list[str], decision: tuple[str, str, str]
    ) -> bool:
        """One bulk decision: the queue's form sent with the chosen steps ticked, then its
        confirmation's form as it stands. False when the service asked to come back later."""
        outcome, comment, done = decision
        picked = PageForm(fields=queue.fields, boxes={"comment": comment}, ticked=chosen)
        confirmation = await http.post(f"{site}{QUEUE_PATH}/xac-nhan", data=picked.sent(outcome=outcome))
        form = read_form(confirmation.text) if confirmation.status_code == 200 else None
        if form is None:
            return False
        answer = await http.post(f"{site}{QUEUE_PATH}/quyet-dinh", data=form.sent())
        if answer.status_code == 429 or answer.status_code >= 500:
            return False
        failed = len((read_form(answer.text) or PageForm()).ticked) if answer.status_code == 200 else len(chosen)
        self.tally[done] += len(chosen) - failed  # the queue again: a step that failed stays ticked
        self.tally["queue confirmations"] += 1
        if failed:
            self.tally["refused"] += failed
        return True

    def _decision(self, form: PageForm, luck: random.Random) -> tuple[dict[str, str], str]:
        data = dict(form.inputs)
        if "request_changes" in form.choices and luck.random() < self.shares.send_back:
            return {**data, "outcome": "request_changes", "comment": SEND_BACK_COMMENT}, "sent back"
        return {**data, "outcome": "approve", "comment": ""}, "approved"

    def _submission(self, form: PageForm, link: Link, luck: random.Random) -> tuple[dict[str, str], str]:
        official = self.plan.official(link.official)
        writer = official.name if official else link.official
        data = dict(form.inputs)
        for name, held in form.boxes.items():
            if name != "links":  # held: the consolidation's suggested summary, or what was sent before
                data[name] = held or f"{link.stage.name.vi}: nội dung diễn tập của {writer}."
        if "amount" in form.inputs:
            data["amount"] = luck.choice(AMOUNTS)
        if link.resubmission:
            data["text"] = f"{form.boxes.get('text', '')}\nĐã bổ sung theo ý kiến.".strip()
            return data, "resubmitted"
        return data, "submitted"
