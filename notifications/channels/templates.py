"""The ZNS parameters and SMS texts of each message kind, from `notifications/templates/channels.yaml`.

The file is checked when it is read: every kind of `base.KINDS` and no other; each ZNS
parameter filled from a value the kind's email has (`notifications.render.KINDS`), and never
from its link (Zalo refuses templates with links in their text: the link is the button's
parameter); each SMS in NFC, with only the placeholders `SMS_FIELDS` (names of people and steps
are long and vary: they would push a text past two segments); a kind whose email carries the
personal link carries it in its SMS too.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from approvals.errors import InvalidInput
from notifications import render
from notifications.channels.base import KINDS, UnknownKind
from notifications.channels.segments import sms_segments
from notifications.short_links import CODE_LENGTH, SHORT_PATH

TEMPLATES_FILE = render.PACKAGE_DIR / "templates" / "channels.yaml"
# The SMS placeholders, each with the longest value it takes (for counting segments).
SMS_FIELDS: dict[str, str] = {
    "due": "17:00 ngày 31/12/2026 (giờ Việt Nam)",  # approvals.i18n.local_time
    "count": "999",
    "number": "999/BC-UBND",  # the email's `number`, without "Số: "
    "link": "",  # the short link: `short_link_sample(public_base_url)`
}
MAX_SMS_SEGMENTS = 2


class TemplatesInvalid(InvalidInput):
    """channels.yaml breaks one of its rules."""


@dataclass(frozen=True)
class ZnsTemplate:
    params: Mapping[str, str]  # ZNS parameter -> the email value that fills it
    button_param: str | None = None  # the button's URL parameter, filled with the link
    button_label: str = ""


@dataclass(frozen=True)
class KindTemplates:
    kind: str
    zns: ZnsTemplate
    sms: str

    def zns_data(self, values: Mapping[str, str]) -> dict[str, str]:
        """ZNS `template_data`: each parameter's value, the link in the button's."""
        data = {param: str(values.get(source, "")) for param, source in self.zns.params.items()}
        if self.zns.button_param:
            data[self.zns.button_param] = str(values.get("link", ""))
        return data

    def sms_text(self, values: Mapping[str, str]) -> str:
        """The SMS, its {link} the short link when the values have one (`short_link`), else `link`."""
        filled = {name: str(values.get(name, "")) for name in SMS_FIELDS}
        filled["link"] = str(values.get("short_link") or values.get("link", ""))
        return unicodedata.normalize("NFC", self.sms.format(**filled))

    def sms_sample(self, public_base_url: str) -> str:
        """The SMS with the longest value of each placeholder: what its segments are counted on."""
        return self.sms_text({**SMS_FIELDS, "link": short_link_sample(public_base_url)})


def short_link_sample(public_base_url: str) -> str:
    """A short link as long as the real ones (`notifications.short_links`): <public base URL>/l/<code>."""
    return f"{public_base_url.rstrip('/')}{SHORT_PATH}{'x' * CODE_LENGTH}"


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _kind(kind: str, entry: object, where: str) -> KindTemplates:
    if not isinstance(entry, dict) or not isinstance(entry.get("zns"), dict) or not isinstance(entry.get("sms"), str):
        raise TemplatesInvalid(f"{where}: {kind}: needs `zns` (params, button) and `sms` (a text)")
    email_values = set(render.KINDS[kind])
    zns, sms = entry["zns"], entry["sms"]
    params = zns.get("params") or {}
    if not isinstance(params, dict) or not params:
        raise TemplatesInvalid(f"{where}: {kind}.zns.params: the ZNS parameters, each with the email value it takes")
    for param, source in params.items():
        if source in ("link", "download", "problem"):
            raise TemplatesInvalid(f"{where}: {kind}.zns.params.{param}: a link goes in the button, never the text")
        if source not in email_values:
            raise TemplatesInvalid(f"{where}: {kind}.zns.params.{param}: the {kind} email has no value {source!r}")
    button = zns.get("button")
    links = "link" in email_values
    if links and not (isinstance(button, dict) and button.get("param")):
        raise TemplatesInvalid(f"{where}: {kind}.zns.button: the personal link needs a button (its `param`)")
    if unicodedata.normalize("NFC", sms) != sms:
        raise TemplatesInvalid(f"{where}: {kind}.sms: not NFC")
    unknown = _placeholders(sms) - set(SMS_FIELDS)
    if unknown:
        raise TemplatesInvalid(
            f"{where}: {kind}.sms: unknown placeholder(s) {sorted(unknown)} (use {list(SMS_FIELDS)})"
        )
    if links and "link" not in _placeholders(sms):
        raise TemplatesInvalid(f"{where}: {kind}.sms: the {kind} email carries a link: the SMS needs {{link}}")
    return KindTemplates(
        kind=kind,
        zns=ZnsTemplate(
            params=dict(params),
            button_param=str(button["param"]) if isinstance(button, dict) and button.get("param") else None,
            button_label=str(button.get("label", "")) if isinstance(button, dict) else "",
        ),
        sms=sms,
    )


def read_templates(path: Path = TEMPLATES_FILE) -> dict[str, KindTemplates]:
    """Every kind's templates, checked (TemplatesInvalid names the file and the kind)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise TemplatesInvalid(f"{path}: {error}") from None
    if not isinstance(raw, dict):
        raise TemplatesInvalid(f"{path}: a mapping of message kinds")
    missing, extra = set(KINDS) - set(raw), set(raw) - set(KINDS)
    if missing or extra:
        raise TemplatesInvalid(f"{path}: kinds missing {sorted(missing)}, unknown {sorted(extra)}")
    return {kind: _kind(kind, raw[kind], str(path)) for kind in KINDS}


@functools.cache
def shipped_templates() -> dict[str, KindTemplates]:
    """The package's channels.yaml, read once per process."""
    return read_templates()


def templates_of(kind: str, templates: Mapping[str, KindTemplates] | None = None) -> KindTemplates:
    catalogue = shipped_templates() if templates is None else templates
    try:
        return catalogue[kind]
    except KeyError:
        raise UnknownKind(f"no channel template for the kind {kind!r}") from None


def too_long(kind: KindTemplates, public_base_url: str) -> int | None:
    """The SMS's segment count when it is over MAX_SMS_SEGMENTS, else None."""
    segments = sms_segments(kind.sms_sample(public_base_url))
    return segments if segments > MAX_SMS_SEGMENTS else None
