"""How an official is reached: the channels in their order (Zalo, then SMS, then email, say),
the mobile phone Zalo and SMS reach, and the day the official agreed to each.

**Consent.** A phone number is personal data. Decree 13/2023/NĐ-CP on the protection of personal
data (and the Law on Personal Data Protection that took over from it in 2026) lets it be
processed only with the person's consent, given for a purpose and able to be shown; sending by
Zalo (ZNS) or SMS hands the number to a third party (Zalo's operator, an SMS gateway). So the
plan records, for each of those channels, the day the official agreed (`consent: {zalo:
2025-03-01, sms: 2025-03-01}`, with `basis`: where the signed form is kept), `plan check`
refuses a channel without it, and `addresses` never gives one. Withdrawing consent is taking
the day (and the channel) out of the plan file. Email needs no such record: the official's
work address is the one their agency gave them for their duties.

**Email comes last, always.** Every official has an email, and it is the channel of record:
attachments (the signed report, a unit's files) and calendar invites go only by email, whatever
the order says of reminders. A message goes to the first channel that takes it and falls back to
the next, so email is required *last*: the fallback every other channel ends in. (Email placed
before Zalo would leave Zalo unused, since an email is rarely refused on the spot.)
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

from approvals.plan.values import OneLine, Strict, one_of, quoted

# Vietnamese mobile numbers since the 2018 move to ten digits: 0, then 3, 5, 7, 8 or 9, then 8
# digits. Only these ranges are checked, not each network's prefixes (032-039 Viettel, 081-085
# VinaPhone, ...): prefixes are still being given out, and a number keeps its prefix when it
# moves to another network. Landlines are 02x (0205 for Lạng Sơn), 11 digits.
MOBILE_RANGES = "35789"
_SEPARATORS = re.compile(r"[ .\-]")
_SHOWN = "0912 345 678 or +84 912 345 678"


class Channel(str, Enum):
    zalo = "zalo"  # a Zalo notification (ZNS) to the phone
    sms = "sms"  # a text message to the phone
    email = "email"  # the official's email address: the channel of record


BY_PHONE = (Channel.zalo, Channel.sms)


def vietnamese_mobile(value: Any) -> str:
    """A Vietnamese mobile number in E.164 (`+84912345678`) from the forms people write:
    `0912345678`, `+84912345678`, `84912345678`, with spaces, dots or hyphens between digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML reads an unquoted 84912345678 (or +84...) as a number; 0912... loses its 0 that way.
        if not str(value).startswith("84"):
            raise ValueError(
                f"phone is not text: YAML read it as the number {value}; put it in quotes ('0912 345 678')"
            )
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"phone {quoted(value)} is not a phone number (write it as {_SHOWN})")
    digits = _SEPARATORS.sub("", value)
    if not re.fullmatch(r"\+?[0-9]+", digits):
        raise ValueError(f"phone {quoted(value)} may hold only digits, spaces, dots, hyphens and a leading +")
    if digits.startswith("+") and not digits.startswith("+84"):
        raise ValueError(f"phone {quoted(value)} is not a Vietnamese number (+84): Zalo and SMS reach +84 numbers")
    digits = digits.removeprefix("+")
    if digits.startswith("84"):
        national = digits[2:]
        if national.startswith("0"):
            raise ValueError(f"phone {quoted(value)} keeps the 0 after 84: write {_SHOWN}")
    elif digits.startswith("0"):
        national = digits[1:]
    else:
        raise ValueError(f"phone {quoted(value)} must start with 0 or +84 ({_SHOWN})")
    if national.startswith("2"):
        raise ValueError(
            f"phone {quoted(value)} is a landline (02x): Zalo and SMS reach a mobile number (03x, 05x, 07x, 08x or 09x)"
        )
    if not national or national[0] not in MOBILE_RANGES:
        raise ValueError(
            f"phone {quoted(value)} is not a Vietnamese mobile number: those start with 03, 05, 07, 08 or 09 ({_SHOWN})"
        )
    if len(national) != 9:
        raise ValueError(
            f"phone {quoted(value)} has {len(national) + 1} digits from its 0: "
            f"a Vietnamese mobile number has 10 ({_SHOWN})"
        )
    return "+84" + national


MobilePhone = Annotated[str, BeforeValidator(vietnamese_mobile)]


class Consent(Strict):
    """The day the official agreed to be reached by each channel that needs it (Decree
    13/2023/NĐ-CP), and where that agreement is kept."""

    zalo: dt.date | None = Field(None, description="The day they agreed to Zalo notifications.")
    sms: dt.date | None = Field(None, description="The day they agreed to text messages.")
    basis: OneLine = Field("", max_length=300, description="How it was given and where it is kept (a form's number).")

    def given(self, channel: Channel, on: dt.date | None = None) -> bool:
        """Whether the official agreed to the channel (by `on`, when given). Email needs no consent."""
        if channel is Channel.email:
            return True
        day: dt.date | None = getattr(self, channel.value)
        return day is not None and (on is None or day <= on)


def _channel_rules(channels: list[Channel], info: ValidationInfo) -> list[Channel]:
    """The rules of one official's channels, every broken one in the message. Read after the
    phone and the consent (declared before `channels`): a phone refused already said so."""
    problems: list[str] = []
    first: dict[Channel, int] = {}
    for j, channel in enumerate(channels):
        if channel in first:
            problems.append(f"'{channel.value}' is listed twice (channels[{first[channel]}] and channels[{j}])")
        else:
            first[channel] = j
    consent = info.data.get("consent")
    for channel in first:
        if channel not in BY_PHONE:
            continue
        if "phone" in info.data and info.data["phone"] is None:
            problems.append(f"'{channel.value}' needs a phone: give the official's mobile number (phone)")
        if isinstance(consent, Consent) and getattr(consent, channel.value) is None:
            problems.append(
                f"'{channel.value}' needs the official's consent (Decree 13/2023/NĐ-CP): "
                f"give the day they agreed (consent: {{{channel.value}: YYYY-MM-DD}})"
            )
    if Channel.email not in first:
        problems.append("email must be among the channels, last: it is the channel of record and the last fallback")
    elif channels[-1] is not Channel.email:
        problems.append("email must come last: it is the channel of record and the fallback of the others")
    if problems:
        raise ValueError("; ".join(problems))
    return channels


Channels = Annotated[list[Annotated[Channel, one_of(Channel, "channel")]], AfterValidator(_channel_rules)]
"""An official's channels in order: zalo and sms need a phone and consent, email comes last."""

DEFAULT_CHANNELS = [Channel.email]


@dataclass(frozen=True)
class Address:
    """Where one channel reaches an official: their phone (E.164) for Zalo and SMS, their email."""

    channel: Channel
    address: str


def addresses(
    channels: list[Channel], *, phone: str | None, email: str, consent: Consent, on: dt.date | None = None
) -> list[Address]:
    """The channels in order, each with its address: only those the official agreed to (by
    `on`, when given) and has a phone for. Email, the channel of record, is always among them
    (`plan check` refuses channels without it)."""
    found: list[Address] = []
    for channel in channels:
        if channel is Channel.email:
            found.append(Address(channel, email))
        elif phone is not None and consent.given(channel, on):
            found.append(Address(channel, phone))
    return found
