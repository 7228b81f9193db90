"""Calendar invites: built with notifications.invites, read back with icalendar, and sent
through the outbox and the dispatcher as an attachment."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import unicodedata
import uuid
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Alarm, Calendar, Event, Timezone, vCalAddress

from approvals.errors import KehoachError
from notifications.invites import PRODID, event_uid, invite, sequence_at
from notifications.models import MessageStatus
from notifications.outbox import Attachment, HeaderInjection, MessageRefused, Recipient, enqueue
from tests.notifications.helpers import (
    ADDRESS,
    DOMAIN,
    NAME,
    dispatcher,
    queue,
    row,
    simple_email,
)

REQUEST, ASSIGNEE, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")  # the packaged plan's time zone
DUE = dt.datetime(2026, 11, 30, 17, 0, tzinfo=VIETNAM)  # 10:00 UTC
SUMMARY = "Hạn phê duyệt: Kế hoạch truyền thông năm 2027"
ORGANIZER = ("Hệ thống kehoach", "kehoach@lang-son.example")


def make(**overrides):
    values = dict(
        request_id=REQUEST,
        assignee_id=ASSIGNEE,
        domain=DOMAIN,
        due=DUE,
        summary=unicodedata.normalize("NFD", SUMMARY),
        organizer=ORGANIZER,
        attendee=(unicodedata.normalize("NFD", NAME), ADDRESS),
        sequence=1,
        description="Mở thư để xem liên kết phê duyệt.",
    )
    values.update(overrides)
    return invite(**values)


def event_of(attachment: Attachment):
    calendar = Calendar.from_ical(attachment.data)
    [event] = calendar.walk("VEVENT")
    return calendar, event


def test_an_invite_ends_at_the_due_time_in_vietnam():
    attachment = make()
    assert attachment.filename == "invite.ics"
    assert attachment.content_type == "text/calendar; method=REQUEST; charset=UTF-8"
    calendar, event = event_of(attachment)
    assert calendar["method"] == "REQUEST" and calendar["version"] == "2.0"
    end = event["dtend"].dt
    assert end == DUE
    assert getattr(end.tzinfo, "key", str(end.tzinfo)) == "Asia/Ho_Chi_Minh"
    assert (end.hour, end.minute, end.utcoffset()) == (17, 0, dt.timedelta(hours=7))
    assert event["dtstart"].dt == DUE - dt.timedelta(minutes=30)
    assert b"DTEND;TZID=Asia/Ho_Chi_Minh:20261130T170000" in attachment.data
    [timezone] = calendar.walk("VTIMEZONE")
    assert timezone["tzid"] == "Asia/Ho_Chi_Minh"
    assert str(event["summary"]) == SUMMARY  # NFC
    assert str(event["status"]) == "CONFIRMED" and event["sequence"] == 1
    assert str(event["attendee"]) == f"mailto:{ADDRESS}"
    assert event["attendee"].params["CN"] == NAME and event["attendee"].params["RSVP"] == "FALSE"
    assert str(event["organizer"]) == f"mailto:{ORGANIZER[1]}"
    [alarm] = event.walk("VALARM")
    assert alarm["trigger"].dt == -dt.timedelta(days=1)
    assert str(event["uid"]) == event_uid(REQUEST, ASSIGNEE, DOMAIN)


def test_the_shared_time_zone_is_the_one_icalendar_would_add_and_appears_once():
    """The VTIMEZONE is built once per process (it costs ~25 ms): every invite still carries
    exactly the component icalendar derives for an event in Vietnam's zone."""
    reference = Calendar()
    event = Event()
    event.add("dtstart", DUE.astimezone(VIETNAM))
    reference.add_component(event)
    reference.add_missing_timezones()
    [expected] = reference.walk("VTIMEZONE")
    for attachment in (make(), make(sequence=2, cancelled=True), make(due=DUE + dt.timedelta(days=40))):
        calendar, _event = event_of(attachment)
        [timezone] = calendar.walk("VTIMEZONE")
        assert timezone.to_ical() == expected.to_ical()
        assert calendar.subcomponents.index(timezone) < calendar.subcomponents.index(_event)


def test_the_event_is_shown_in_the_zone_its_due_time_carries():
    """The zone comes with the due time (the plan's): the same moment, shown and described in
    that zone; a due time without a zoneinfo zone (naive, UTC, a bare offset) is refused."""
    calendar, event = event_of(make(due=DUE.astimezone(ZoneInfo("Asia/Bangkok"))))
    end = event["dtend"].dt
    assert end == DUE and end.tzinfo.key == "Asia/Bangkok" and end.hour == 17
    assert [str(z["tzid"]) for z in calendar.walk("VTIMEZONE")] == ["Asia/Bangkok"]
    for unzoned in (
        DUE.replace(tzinfo=None),
        DUE.astimezone(dt.UTC),
        DUE.astimezone(dt.timezone(dt.timedelta(hours=7))),
    ):
        with pytest.raises(KehoachError):
            make(due=unzoned)


def test_an_update_keeps_the_uid_with_a_higher_sequence():
    first = event_of(make(sequence=sequence_at(DUE - dt.timedelta(days=10))))[1]
    moved = DUE + dt.timedelta(days=2)
    second = event_of(make(due=moved, sequence=sequence_at(DUE - dt.timedelta(days=3))))[1]
    assert second["uid"] == first["uid"]
    assert second["sequence"] > first["sequence"]
    assert second["dtend"].dt == moved
    assert event_of(make(assignee_id=OTHER))[1]["uid"] != first["uid"]  # one event per assignee
    assert event_of(make(request_id=uuid.uuid4()))[1]["uid"] != first["uid"]


def test_a_decided_request_cancels_the_event():
    opened = event_of(make(sequence=5))[1]
    attachment = make(sequence=6, cancelled=True)
    assert attachment.filename == "cancel.ics"
    assert attachment.content_type == "text/calendar; method=CANCEL; charset=UTF-8"
    calendar, event = event_of(attachment)
    assert calendar["method"] == "CANCEL"
    assert str(event["status"]) == "CANCELLED"
    assert event["uid"] == opened["uid"] and event["sequence"] == 6
    assert not event.walk("VALARM")


_tz = functools.cache(lambda key: Timezone.from_tzid(key))


def _icalendar_invite(
    *,
    request_id,
    assignee_id,
    domain,
    due,
    summary,
    organizer,
    attendee,
    sequence,
    description="",
    cancelled=False,
    duration=dt.timedelta(minutes=30),
    reminder=dt.timedelta(days=1),
    now,
    language="vi",
) -> bytes:
    """The oracle: the same invite built with icalendar's own components and serialiser (what
    notifications.invites did before it wrote the event's lines itself)."""
    nfc = lambda text: unicodedata.normalize("NFC", text)  # noqa: E731

    def address(name, email, attendee=False):
        value = vCalAddress(f"mailto:{email}")
        value.params["cn"] = nfc(name)
        if attendee:
            value.params["role"], value.params["partstat"], value.params["rsvp"] = (
                "REQ-PARTICIPANT",
                "NEEDS-ACTION",
                "FALSE",
            )
        return value

    end = due
    calendar = Calendar()
    for name, value in (
        ("prodid", PRODID),
        ("version", "2.0"),
        ("calscale", "GREGORIAN"),
        ("method", "CANCEL" if cancelled else "REQUEST"),
    ):
        calendar.add(name, value)
    event = Event()
    event.add("uid", event_uid(request_id, assignee_id, domain))
    event.add("dtstamp", now.astimezone(dt.UTC))
    event.add("sequence", sequence)
    event.add("dtstart", end - duration)
    event.add("dtend", end)
    event.add("summary", nfc(summary), parameters={"language": language})
    if description:
        event.add("description", nfc(description), parameters={"language": language})
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "TRANSPARENT")
    event.add("class", "PRIVATE")
    event.add("organizer", address(*organizer))
    event.add("attendee", address(*attendee, attendee=True))
    if reminder is not None and not cancelled:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("trigger", -reminder)
        alarm.add("description", nfc(summary))
        event.add_component(alarm)
    calendar.add_component(_tz(due.tzinfo.key))
    calendar.add_component(event)
    return calendar.to_ical()


_TEXT = st.text(alphabet=st.sampled_from(list("aăâbđêôơưyz ÀÁẠẢÃàáạảãệữỹ,;:\\^\"'’\n\r\t–&<>")), max_size=120)


@settings(max_examples=300, deadline=None)
@given(
    summary=_TEXT.filter(str.strip),
    description=_TEXT,
    name=_TEXT.filter(str.strip),
    organizer=_TEXT.filter(str.strip),
    cancelled=st.booleans(),
    language=st.sampled_from(["vi", "en"]),
    sequence=st.integers(0, 2**31 - 1),
    minutes=st.integers(0, 60 * 24 * 400),
    reminder=st.sampled_from([None, dt.timedelta(days=1), dt.timedelta(hours=2), dt.timedelta(minutes=90)]),
)
def test_the_invite_is_what_icalendar_writes_for_the_same_event(
    summary, description, name, organizer, cancelled, language, sequence, minutes, reminder
):
    """The event's lines are written by hand (icalendar's serialiser cost most of a decision's
    calendar file): byte for byte what icalendar writes, escaping and folding included, for any
    text (Vietnamese, separators, quotes, carets, line breaks), both methods and both languages."""
    now = dt.datetime(2026, 12, 2, 3, 4, 5, 678, tzinfo=dt.UTC)
    values = dict(
        request_id=REQUEST,
        assignee_id=ASSIGNEE,
        domain=DOMAIN,
        due=DUE + dt.timedelta(minutes=minutes, seconds=17),
        summary=summary,
        organizer=(organizer, "o@x.vn"),
        attendee=(name, ADDRESS),
        sequence=sequence,
        description=description,
        cancelled=cancelled,
        reminder=reminder,
        now=now,
        language=language,
    )
    assert invite(**values).data == _icalendar_invite(**values)
    Calendar.from_ical(invite(**values).data)  # and icalendar reads it back


def test_sequence_at_grows_with_time_and_fits_32_bits():
    now = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)
    assert sequence_at(now + dt.timedelta(minutes=1)) == sequence_at(now) + 1
    assert 0 < sequence_at(dt.datetime(2100, 1, 1, tzinfo=dt.UTC)) < 2**31
    with pytest.raises(KehoachError):
        sequence_at(now.replace(tzinfo=None))


async def test_the_invite_is_stored_and_sent_as_an_attachment(database, keys, faulty_smtp):
    key = keys()
    attachment = make()
    queued = await queue(database, key, attachments=[attachment])
    assert queued.attachments == [
        {
            "filename": "invite.ics",
            "content_type": attachment.content_type,
            "data": base64.b64encode(attachment.data).decode(),
        }
    ]

    assert await dispatcher(database, faulty_smtp.port).run_once() == 1
    assert (await row(database, key)).status == MessageStatus.sent.value
    [received] = faulty_smtp.received(queued.message_id)
    message = received.message
    assert message.get_content_type() == "multipart/mixed"
    assert message.get_body(("plain",)).get_content() and message.get_body(("html",)).get_content()
    [part] = list(message.iter_attachments())
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "REQUEST"
    assert part.get_filename() == "invite.ics"
    assert part.get_payload(decode=True) == attachment.data
    event = Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")[0]
    assert str(event["uid"]) == event_uid(REQUEST, ASSIGNEE, DOMAIN)


@pytest.mark.parametrize(
    "attachment, error",
    [
        (Attachment("invite.ics\r\nBcc: x@evil.example", "text/calendar", b"x"), HeaderInjection),
        (Attachment("invite.ics", "text/calendar;\r\n method=REQUEST", b"x"), HeaderInjection),
        (Attachment("invite.ics", "text/calendar; method=REQUEST, x", b"x"), MessageRefused),
        (Attachment("invite.ics", "calendar", b"x"), MessageRefused),
        (Attachment("../etc/passwd", "text/plain", b"x"), MessageRefused),
        (Attachment("big.bin", "application/octet-stream", b"\0" * (5 * 1024 * 1024 + 1)), MessageRefused),
    ],
)
async def test_a_bad_attachment_is_refused_and_nothing_is_queued(database, keys, attachment, error):
    key = keys()
    with pytest.raises(error):
        async with database.transaction() as session:
            await enqueue(
                session,
                idempotency_key=key,
                kind="approval_request",
                to=[Recipient(NAME, ADDRESS)],
                email=simple_email(),
                domain=DOMAIN,
                attachments=[attachment],
            )
    assert await row(database, key) is None
