"""Email rendering: one Jinja2 environment, HTML and plain text, Vietnamese or English.

Every kind has `<kind>.txt.j2` and `<kind>.html.j2` templates and a subject in the
catalogue (`locale/messages.yaml`); `KINDS` lists what each one needs. Texts come from
the catalogue (`_("key", name=value)`); inputs and outputs are NFC; an undefined
variable is an error (StrictUndefined), never an empty string.

A deployment may override any template, and any catalogue text, with a folder of its
own (`Renderer(override_dir=...)`): `<kind>.txt.j2`, `<kind>.html.j2`, `base.html.j2`
... and a `messages.yaml` whose keys replace the package's (each with vi and en).
"""

from __future__ import annotations

import copy
import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    UndefinedError,
    select_autoescape,
)

from approvals.i18n import Catalogue, catalogue

PACKAGE_DIR = Path(__file__).resolve().parent
MESSAGES = PACKAGE_DIR / "locale" / "messages.yaml"

# problem: the official's "Báo cáo vướng mắc" link, or "" for none
_LINK_EMAIL = ("title", "name", "cycle", "stage", "agency", "due", "summary", "link", "problem")
KINDS: dict[str, tuple[str, ...]] = {
    # personal-link emails (approvals.wording.presentation.link_messages gives exactly these)
    "approval_request": _LINK_EMAIL,
    "submission_request": _LINK_EMAIL,
    "resubmission_request": _LINK_EMAIL,
    "reminder": _LINK_EMAIL,
    "escalation": _LINK_EMAIL,  # to whoever the overdue step was handed to
    # to the requester; result: approved | rejected | changes_requested | expired; decided_by, comment may be ""
    "outcome": ("title", "name", "cycle", "stage", "result", "decided_by", "at", "comment", "link"),
    # to the approver after a decision; outcome: approve | reject | request_changes
    # by_reply: "yes" when decided by replying to the email (the receipt says what was understood), else ""
    "receipt": ("outcome", "at", "stage", "cycle", "comment", "by_reply"),
    # to a stage's superior (escalate_to), one per stage: the units that have not submitted by the due
    # time; units: [{unit, officer (asked to submit), due}]
    "submission_overdue": ("title", "name", "cycle", "stage", "count", "units"),
    # to a stage's superior when steps are past their due time and keep waiting (keep_waiting);
    # units: [{unit, officer (the approvers waited on), due}]
    "step_overdue": ("title", "name", "cycle", "stage", "count", "units"),
    # to an approver whose link closed because the step was settled by others; result as for outcome
    "step_closed": ("title", "name", "cycle", "stage", "result", "decided_by", "at"),
    # to coordinators; event: started | finished; stages: [{stage, status (stage_status.*), due}]
    "cycle_digest": ("title", "name", "cycle", "event", "at", "stages", "link"),
    # to coordinators when a person must act; reason: submission_unrouted | resubmission_unrouted | ...;
    # note: the advice key (attention.note.<note>); detail may be ""
    "attention": ("title", "name", "cycle", "stage", "agency", "due", "reason", "note", "detail", "link"),
    # to coordinators; failures: [{recipient, subject, error, at}]
    "delivery_failure": ("title", "name", "count", "failures", "link"),
    # to the sender of an emailed reply that was not applied: reason is the catalogue key that says why
    # (reply.<handling>, reply.unrecognised, reply.comment_required); stage and cycle "" when the reply
    # named no step; link the approval page, only to the approver's own (or a live delegate's) address, else ""
    "reply_answer": ("name", "stage", "cycle", "reason", "link"),
    # to each recipient of the lead agency's consolidated report (an agency's mailbox), with the DOCX
    # and PDF attached: name is the agency, number "Số: 12/BC-SKHCN", report its summary of contents
    # download: the recipient's download link when the files were too large to attach, else ""
    "report_issued": ("name", "issuer", "number", "report", "year", "signer", "at", "download"),
    # to an official, once a day, their open steps: count and overdue (numbers as text), day the plan's
    # local day; steps: [{stage, unit, cycle, due, overdue ("yes" or ""), link (its approval page)}];
    # link the queue link, which opens every one of them on one page
    "daily_digest": ("title", "name", "count", "overdue", "day", "steps", "link"),
}
# Kinds whose subject depends on a value: the subject key is "<kind>.subject.<value>".
SUBJECT_VARIANT = {"outcome": "result", "cycle_digest": "event", "attention": "reason"}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _nfc(value: object) -> object:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {key: _nfc(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_nfc(item) for item in value)
    return value


def _catalogue(override_dir: Path | None) -> Catalogue:
    base = catalogue(MESSAGES)
    own = override_dir / "messages.yaml" if override_dir else None
    if own is None or not own.is_file():
        return base
    merged = copy.copy(base)  # the package's stays cached and untouched
    merged.messages = {**base.messages, **Catalogue(own).messages}
    return merged


@functools.lru_cache(maxsize=8)
def shared_renderer(override_dir: Path | None = None) -> Renderer:
    """One Renderer per process and template folder: its templates are compiled once (about
    10 ms each), not again by every task that queues an email."""
    return Renderer(override_dir)


class Renderer:
    """Templates are looked up first in `override_dir` (a deployment's own), then in the package."""

    def __init__(self, override_dir: Path | None = None):
        override_dir = Path(override_dir) if override_dir else None
        loaders = [FileSystemLoader(str(override_dir))] if override_dir else []
        loaders.append(FileSystemLoader(str(PACKAGE_DIR / "templates")))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=False,  # templates are read once per process: no stat() per email
        )
        self.catalogue = _catalogue(override_dir)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one renderer per process, templates never change under it
    def _template(self, name: str) -> Template:
        return self.env.get_template(name)

    def render(self, kind: str, language: str, **context: object) -> RenderedEmail:
        _ = self.catalogue.gettext_for(language)
        values = {key: _nfc(value) for key, value in context.items()}
        subject_key = f"{kind}.subject"
        if kind in SUBJECT_VARIANT:
            variant = SUBJECT_VARIANT[kind]
            if variant not in values:
                raise UndefinedError(f"the subject of '{kind}' needs {variant!r}")
            subject_key = f"{subject_key}.{values[variant]}"
        if subject_key not in self.catalogue.messages:
            raise UndefinedError(f"no subject {subject_key!r} in the catalogue")
        try:
            subject = _(
                subject_key,
                **{k: v for k, v in values.items() if isinstance(v, (str, int)) and not isinstance(v, bool)},
            )
        except KeyError as exc:
            raise UndefinedError(f"the subject of '{kind}' needs {exc.args[0]!r}") from None
        rehearsal = bool(values.get("rehearsal"))
        if rehearsal:  # an email of a rehearsal says so first, in its subject and its text
            subject = f"{_('rehearsal.subject')} {subject}"
        common = {"_": _, "language": language, "subject": subject, **values, "rehearsal": rehearsal}
        text = self._template(f"{kind}.txt.j2").render(common)
        if rehearsal:
            text = f"{_('rehearsal.banner')}\n\n{text}"
        html = self._template(f"{kind}.html.j2").render(common)
        return RenderedEmail(
            subject=unicodedata.normalize("NFC", subject),
            text=unicodedata.normalize("NFC", text),
            html=unicodedata.normalize("NFC", html),
        )
