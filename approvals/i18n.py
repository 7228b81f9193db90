"""One way to turn message keys into Vietnamese or English text.

Each package keeps its own catalogue file (`locale/messages.yaml`: key -> vi, en);
this module loads them and formats times and amounts the way each language does.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import yaml

from approvals.errors import KehoachError

LANGUAGES = ("vi", "en")


class Gettext(Protocol):
    """A catalogue's texts in one language: `_("key", name=...)`."""

    def __call__(self, key: str, **values: object) -> str: ...


class Catalogue:
    def __init__(self, path: Path):
        self.path = path
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        self.messages: dict[str, dict[str, str]] = {}
        for key, texts in raw.items():
            missing = [lang for lang in LANGUAGES if lang not in texts]
            if missing:
                raise KehoachError(f"{path}: message '{key}' has no {', '.join(missing)} text")
            self.messages[key] = {lang: unicodedata.normalize("NFC", texts[lang]) for lang in LANGUAGES}

    def text(self, key: str, language: str, **values: object) -> str:
        texts = self.messages[key]  # a missing key is a bug: fail loudly
        template = texts.get(language) or texts["vi"]
        return template.format(**values) if values else template

    def gettext_for(self, language: str) -> Gettext:
        def gettext(key: str, **values: object) -> str:
            return self.text(key, language, **values)

        return gettext


@lru_cache
def catalogue(path: Path) -> Catalogue:
    return Catalogue(path)


# What a zone is called after a time; a zone not named here is called by its IANA name.
ZONE_NAMES = {
    "Asia/Ho_Chi_Minh": {"vi": "giờ Việt Nam", "en": "Vietnam time"},
    "Asia/Saigon": {"vi": "giờ Việt Nam", "en": "Vietnam time"},
}


def zone_name(tz: ZoneInfo, language: str) -> str:
    return ZONE_NAMES.get(tz.key, {}).get(language, tz.key)


def local_time(moment: dt.datetime, tz: ZoneInfo, language: str) -> str:
    """'17:00 ngày 29/11/2026 (giờ Việt Nam)' or '29 Nov 2026, 17:00 (Vietnam time)': the
    moment in `tz` (the plan's time zone), which it names."""
    local = moment.astimezone(tz)
    if language == "en":
        return local.strftime("%d %b %Y, %H:%M") + f" ({zone_name(tz, language)})"
    return local.strftime("%H:%M ngày %d/%m/%Y") + f" ({zone_name(tz, language)})"


def vnd(amount: int, language: str) -> str:
    """Vietnamese groups thousands with dots: 1.250.000.000 ₫; English with commas."""
    grouped = f"{amount:,}"
    return grouped + " VND" if language == "en" else grouped.replace(",", ".") + " ₫"
