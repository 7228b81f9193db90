"""The plan file's values: ids, texts in both languages, one-line and multi-line strings, and
the base model that refuses unknown keys; each refuses what an email header or a page could not
carry, with a message that names the value."""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)


def quoted(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def _either(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _ascii_id(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise ValueError(f"id {quoted(value)} must use lowercase ASCII letters, digits and _, starting with a letter")
    if len(value) > 64:
        raise ValueError(f"id {quoted(value)} is longer than 64 characters")
    return value


def _role_id(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", value):
        raise ValueError(
            f"role id {quoted(value)} must use lowercase ASCII letters, digits and _, with dots separating parts"
            " (e.g. lead_agency.director), each part starting with a letter"
        )
    if len(value) > 96:
        raise ValueError(f"role id {quoted(value)} is longer than 96 characters")
    return value


AsciiId = Annotated[str, AfterValidator(_ascii_id)]
RoleId = Annotated[str, AfterValidator(_role_id)]


def one_of(enum: type[Enum], noun: str) -> BeforeValidator:
    """Name the bad value and the allowed ones, e.g. unknown policy 'majority' (use any, all, quorum or sequence)."""
    allowed = [member.value for member in enum]

    def check(value: Any) -> Any:
        if isinstance(value, enum) or (isinstance(value, str) and value in allowed):
            return value
        raise ValueError(f"unknown {noun} {quoted(value)} (use {_either(allowed)})")

    return BeforeValidator(check)


def day_of_year(month: int, day: int) -> bool:
    try:
        dt.date(2024, month, day)  # a leap year, so 29/2 is a day of the year
    except ValueError:
        return False
    return True


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# What an email header refuses (notifications.outbox): a name, title or address with one would
# fail every email it reaches, in the middle of a cycle. The plan check refuses it first.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f\u2028\u2029]")  # line breaks allowed
# The addresses the outbox accepts: no quotes, commas, semicolons, brackets or spaces.
ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def _one_line(value: str) -> str:
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"contains a control character (U+{ord(found.group()):04X}), such as a line break: a name "
            "or title reaches email headers, which refuse it"
        )
    if value != value.strip():
        raise ValueError("starts or ends with a space")
    return value


def _paragraphs(value: str) -> str:
    found = _CONTROL_IN_TEXT.search(value)
    if found:
        raise ValueError(f"contains a control character (U+{ord(found.group()):04X})")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]


class Text(Strict):
    """A user-facing text in both languages: one line (it reaches email subjects and pages)."""

    vi: OneLine = Field(min_length=1, max_length=300)
    en: OneLine = Field(min_length=1, max_length=300)

    def get(self, language: str) -> str:
        return self.en if language == "en" else self.vi


class Paragraphs(Strict):
    """A longer text in both languages (a stage's summary): line breaks allowed, other control
    characters not."""

    vi: Annotated[str, AfterValidator(_paragraphs)] = Field(min_length=1, max_length=4000)
    en: Annotated[str, AfterValidator(_paragraphs)] = Field(min_length=1, max_length=4000)

    def get(self, language: str) -> str:
        return self.en if language == "en" else self.vi
