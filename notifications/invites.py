"""Calendar invites (.ics, RFC 5545 / iTIP) for a step's due time, in the time zone it carries.

One event per request and assignee, with a UID that stays the same for that pair, so a
calendar updates the event it already has:

- `invite(...)` (METHOD:REQUEST) when a request opens, and again with a higher
  `sequence` whenever its due time or text changes;
- `invite(..., cancelled=True)` (METHOD:CANCEL, STATUS:CANCELLED) once it is decided,
  withdrawn or reassigned, with a sequence higher than the last invite's.

`sequence_at(moment)` gives a sequence that grows with time (minutes since 2020), for a
caller that keeps no revision counter: an update or cancel made later always carries a
higher one. The event ends at the due time (its start is `duration` before), with a
reminder `reminder` before it. The .ics is stored in the outbox as it is, so it carries
no personal link: the email's body has that.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
import uuid
from zoneinfo import ZoneInfo

from icalendar import Calendar, Timezone, vDuration

from approvals.errors import KehoachError
from notifications.outbox import Attachment

PRODID = "-//kehoach//Lang Son communication plan//VI"
_NAMESPACE = uuid.UUID("6f1c9a52-4b7e-5d0a-9c1e-3a8b2f4d7e10")
_SEQUENCE_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@functools.cache
def _timezone_ical(key: str) -> bytes:
    """The VTIMEZONE of a zone (the plan's: Asia/Ho_Chi_Minh), serialised once per process.

    icalendar derives it from the zoneinfo data by walking 1970-2038, about 25 ms of CPU;
    done for every invite, that was most of what a decision cost the web service."""
    vtimezone: bytes = Timezone.from_tzid(key).to_ical()  # icalendar leaves Component.to_ical unannotated
    return vtimezone


@functools.cache
def _calendar_around(method: str) -> tuple[bytes, bytes]:
    """A VCALENDAR's lines before its components and after them (the same for every invite)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    whole = calendar.to_ical()
    end = whole.rindex(b"END:VCALENDAR")
    return whole[:end], whole[end:]


def event_uid(request_id: uuid.UUID | str, assignee_id: uuid.UUID | str, domain: str) -> str:
    """The same for the same request and assignee, and for nothing else."""
    return f"{uuid.uuid5(_NAMESPACE, f'{request_id}/{assignee_id}')}@{domain}"


def sequence_at(moment: dt.datetime) -> int:
    """A SEQUENCE that grows with time: whole minutes since 2020 (fits a 32-bit integer until 6100)."""
    if moment.tzinfo is None:
        raise KehoachError("an aware datetime is needed")
    return int((moment - _SEQUENCE_EPOCH).total_seconds() // 60)


def invite(
    *,
    request_id: uuid.UUID | str,
    assignee_id: uuid.UUID | str,
    domain: str,
    due: dt.datetime,
    summary: str,
    organizer: tuple[str, str],
    attendee: tuple[str, str],
    sequence: int,
    description: str = "",
    cancelled: bool = False,
    duration: dt.timedelta = dt.timedelta(minutes=30),
    reminder: dt.timedelta | None = dt.timedelta(days=1),
    now: dt.datetime | None = None,
    language: str = "vi",
) -> Attachment:
    """An .ics attachment: the event ending at `due`, shown in the time zone `due` carries (a
    zoneinfo zone: the plan's, which the step's messages give their due time in).

    `organizer` and `attendee` are (name, email); `sequence` must grow with every change
    of the same event (see `sequence_at`)."""
    if not isinstance(due.tzinfo, ZoneInfo):
        raise KehoachError("due must carry a zoneinfo time zone (the plan's), to be shown in")
    if sequence < 0:
        raise KehoachError("sequence must not be negative")
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    zone = due.tzinfo.key
    end = due
    method = "CANCEL" if cancelled else "REQUEST"

    lines = [
        _line("SUMMARY", _text(summary), LANGUAGE=language),
        _line("DTSTART", _local(end - duration), TZID=zone),
        _line("DTEND", _local(end), TZID=zone),
        _line("DTSTAMP", f"{stamp:%Y%m%dT%H%M%S}Z"),
        _line("UID", _text(event_uid(request_id, assignee_id, domain))),
        _line("SEQUENCE", str(sequence)),
        _line(
            "ATTENDEE",
            f"mailto:{attendee[1]}",
            CN=_nfc(attendee[0]),
            PARTSTAT="NEEDS-ACTION",
            ROLE="REQ-PARTICIPANT",
            RSVP="FALSE",
        ),  # no replies: the decision is made on the web page
        _line("CLASS", "PRIVATE"),
        *([_line("DESCRIPTION", _text(description), LANGUAGE=language)] if description else []),
        _line("ORGANIZER", f"mailto:{organizer[1]}", CN=_nfc(organizer[0])),
        _line("STATUS", "CANCELLED" if cancelled else "CONFIRMED"),
        _line("TRANSP", "TRANSPARENT"),  # a deadline, not a meeting: it does not make anyone busy
    ]
    if reminder is not None and not cancelled:
        lines += [
            "BEGIN:VALARM",
            _line("ACTION", "DISPLAY"),
            _line("DESCRIPTION", _text(summary)),
            # icalendar 7 leaves vDuration.to_ical unannotated (it returns bytes)
            _line("TRIGGER", vDuration(-reminder).to_ical().decode()),  # type: ignore[no-untyped-call]
            "END:VALARM",
        ]
    event = "\r\n".join(["BEGIN:VEVENT", *lines, "END:VEVENT", ""]).encode()
    # The calendar's own lines and its VTIMEZONE (before the event that refers to it) are the same
    # for every invite: serialised once per process, only the event is serialised here.
    opening, closing = _calendar_around(method)
    data = opening + _timezone_ical(zone) + event + closing

    return Attachment(
        filename="cancel.ics" if cancelled else "invite.ics",
        content_type=f"text/calendar; method={method}; charset=UTF-8",
        data=data,
    )


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# The event's lines are written here rather than through icalendar's components: they are few
# and always the same, and icalendar's generic serialiser was most of a decision's calendar
# cost. The output is what icalendar writes for the same event, byte for byte (its properties
# in its canonical order, parameters sorted, the same escaping and folding): tests compare the two.


def _text(value: str) -> str:
    """A TEXT value, escaped (RFC 5545 3.3.11); line breaks of any kind become \\n."""
    return (
        _nfc(value)
        .replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


_QUOTABLE = re.compile("[,;:\u2019]")
_RFC6868 = {"^": "^^", "\r\n": "^n", "\n": "^n", "\r": "^n", '"': "^'"}
_RFC6868_CHARS = re.compile(r"\r\n|[\^\n\r\"]")


def _parameter(name: str, value: str) -> str:
    """NAME=value, escaped as RFC 6868 says and quoted when it must be (a CN also when it has a
    space or an apostrophe)."""
    also = name == "CN" and any(c in value for c in " '")  # as written, before the escaping
    value = _RFC6868_CHARS.sub(lambda m: _RFC6868[m.group(0)], value)
    return f'{name}="{value}"' if also or _QUOTABLE.search(value) else f"{name}={value}"


def _line(name: str, value: str, **parameters: str) -> str:
    """One content line, folded at 75 octets (never right after a backslash or a caret, so an
    escape stays on one line)."""
    head = ";".join([name, *(_parameter(key, parameters[key]) for key in sorted(parameters))])
    return _fold(f"{head}:{value}")


def _fold(line: str, limit: int = 75) -> str:
    if len(line.encode()) < limit:
        return line
    folded: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        width = len(char.encode())
        if current and size + width >= limit:
            if len(current) > 1 and current[-1] in "\\^":
                carried = current.pop()
                folded.append("".join(current))
                current, size = [carried], len(carried.encode())
            else:
                folded.append("".join(current))
                current, size = [], 0
        current.append(char)
        size += width
    folded.append("".join(current))
    return "\r\n ".join(folded)


def _local(moment: dt.datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S}"
