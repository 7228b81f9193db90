"""Every email kind, in Vietnamese and English, on the real templates and catalogue: decomposed
(NFD) input, NFC output, no undefined variable, the link in both parts, a deployment's
override folder."""

from __future__ import annotations

import unicodedata
import uuid
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from notifications.dispatcher import Dispatcher
from notifications.models import OutboxMessage
from notifications.render import KINDS, PACKAGE_DIR, SUBJECT_VARIANT, Renderer
from tests.notifications.helpers import smtp_config

LANGUAGES = ("vi", "en")
NAME = "Nông Thị Hạnh"
STAGE = "2. Phê duyệt kế hoạch truyền thông năm"
CYCLE = "Kế hoạch năm 2027"
AGENCY = "Sở Khoa học và Công nghệ tỉnh Lạng Sơn"
COMMENT = "Đề nghị bổ sung số liệu quý IV – ý kiến của Nguyễn Văn Đức"
LINK = "https://kehoach.example/a/Tok_en-123?x=1&y=2"
WORDS = {"name": NAME, "stage": STAGE, "cycle": CYCLE}  # shown in every kind that has them


def nfd(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    assert decomposed != text or text.isascii()
    return decomposed


def contexts() -> dict[str, dict]:
    link_email = dict(
        title=nfd("Giám đốc"),
        name=nfd(NAME),
        cycle=nfd(CYCLE),
        stage=nfd(STAGE),
        agency=nfd(AGENCY),
        due=nfd("17:00 ngày 29/11/2026 (giờ Việt Nam)"),
        summary=nfd("Tóm tắt: kế hoạch truyền thông về phát triển bền vững."),
        link=LINK,
        problem="https://kehoach.example/p/bmd1eWVu.20261202.Tok",
    )
    coordinator = dict(title=nfd("Chuyên viên điều phối"), name=nfd(NAME))
    return {
        "approval_request": link_email,
        "submission_request": link_email,
        "resubmission_request": link_email,
        "reminder": link_email,
        "escalation": link_email,
        "outcome": dict(
            title=nfd("Trưởng phòng"),
            name=nfd(NAME),
            cycle=nfd(CYCLE),
            stage=nfd(STAGE),
            result="approved",
            decided_by=nfd("Giám đốc Hoàng Văn Lộc"),
            at=nfd("09:30 ngày 02/12/2026"),
            comment=nfd(COMMENT),
            link=LINK,
        ),
        "submission_overdue": dict(
            title=nfd("Phó Chủ tịch"),
            name=nfd(NAME),
            cycle=nfd(CYCLE),
            stage=nfd(STAGE),
            count="2",
            units=[
                {
                    "unit": nfd(AGENCY),
                    "officer": nfd("Lương Thị Mai"),
                    "due": nfd("17:00 ngày 29/11/2026 (giờ Việt Nam)"),
                },
                {
                    "unit": nfd("UBND phường Lương Văn Tri"),
                    "officer": nfd("Hoàng Thị Thu"),
                    "due": nfd("23:59 ngày 29/11/2026 (giờ Việt Nam)"),
                },
            ],
        ),
        "daily_digest": dict(
            title=nfd("Giám đốc"),
            name=nfd(NAME),
            count="2",
            overdue="1",
            day="02/12/2026",
            steps=[
                {
                    "stage": nfd(STAGE),
                    "unit": nfd(AGENCY),
                    "cycle": nfd(CYCLE),
                    "due": nfd("17:00 ngày 29/11/2026 (giờ Việt Nam)"),
                    "overdue": "yes",
                    "link": "https://kehoach.example/a/Step_one",
                },
                {
                    "stage": nfd(STAGE),
                    "unit": nfd("Sở Tài chính"),
                    "cycle": nfd(CYCLE),
                    "due": nfd("17:00 ngày 09/12/2026 (giờ Việt Nam)"),
                    "overdue": "",
                    "link": "https://kehoach.example/a/Step_two",
                },
            ],
            link=LINK,
        ),
        "step_overdue": dict(
            title=nfd("Giám đốc"),
            name=nfd(NAME),
            cycle=nfd(CYCLE),
            stage=nfd(STAGE),
            count="1",
            units=[
                {
                    "unit": nfd(AGENCY),
                    "officer": nfd("Chu Văn Hải, Triệu Thị Mai"),
                    "due": nfd("17:00 ngày 29/11/2026 (giờ Việt Nam)"),
                }
            ],
        ),
        "attention": dict(
            **coordinator,
            cycle=nfd(CYCLE),
            stage=nfd(STAGE),
            agency=nfd(AGENCY),
            due=nfd("17:00 ngày 29/11/2026 (giờ Việt Nam)"),
            reason="resubmission_unrouted",
            note="unrouted",
            detail=nfd("Không có cán bộ giữ vai trò nộp hồ sơ"),
            link=LINK,
        ),
        "step_closed": dict(
            title=nfd("Phó Chủ tịch"),
            name=nfd(NAME),
            cycle=nfd(CYCLE),
            stage=nfd(STAGE),
            result="approved",
            decided_by=nfd("Chủ tịch Nguyễn Cảnh Toàn"),
            at=nfd("09:30 ngày 02/12/2026"),
        ),
        "receipt": dict(
            outcome="approve",
            at=nfd("17:00 ngày 29/11/2026"),
            stage=nfd(STAGE),
            cycle=nfd(CYCLE),
            comment=nfd(f"Đồng ý – {NAME}"),
            by_reply="yes",
        ),
        "reply_answer": dict(
            name=nfd(NAME),
            stage=nfd(STAGE),
            cycle=nfd(CYCLE),
            reason="reply.comment_required",
            link=LINK,
        ),
        "cycle_digest": dict(
            **coordinator,
            cycle=nfd(CYCLE),
            event="started",
            at=nfd("08:00 ngày 01/01/2027"),
            stages=[
                {"stage": nfd(STAGE), "status": "waiting", "due": nfd("15/01/2027")},
                {"stage": nfd("3. Báo cáo kết quả"), "status": "not_started", "due": nfd("30/11/2027")},
            ],
            link=LINK,
        ),
        "delivery_failure": dict(
            **coordinator,
            count=2,
            link=LINK,
            failures=[
                {
                    "recipient": nfd(f"{NAME} <hanh.nt@lang-son.example>"),
                    "subject": nfd(f"[Cần phê duyệt] {STAGE}"),
                    "error": "550 5.1.1 mailbox unavailable",
                    "at": nfd("10:00 ngày 29/11/2026"),
                },
                {
                    "recipient": "a.nv@lang-son.example",
                    "subject": nfd("[Nhắc việc] Bước 3"),
                    "error": "451 4.3.0 try again later (12 attempts)",
                    "at": nfd("11:00 ngày 29/11/2026"),
                },
            ],
        ),
        "report_issued": dict(
            name=nfd("Ủy ban nhân dân tỉnh Lạng Sơn"),
            issuer=nfd(AGENCY),
            number=nfd("Số: 3/BC-SKHCN"),
            year="2026",
            report=nfd("kết quả thực hiện kế hoạch truyền thông năm 2026"),
            signer=nfd(NAME),
            at=nfd("ngày 05 tháng 12 năm 2026"),
            download="",
        ),
    }


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def test_every_kind_has_both_templates_and_nothing_else_is_there():
    templates = PACKAGE_DIR / "templates"
    kinds = {path.name.removesuffix(".txt.j2") for path in templates.glob("*.txt.j2") if not path.name.startswith("_")}
    assert kinds == set(KINDS)
    assert all((templates / f"{kind}.html.j2").is_file() for kind in KINDS)
    assert set(contexts()) == set(KINDS)
    for kind, needed in KINDS.items():
        assert set(contexts()[kind]) == set(needed), kind


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_renders_nfc_in_both_languages(renderer, kind, language):
    email = renderer.render(kind, language, **contexts()[kind])
    assert email.subject.strip() and "\n" not in email.subject and "\r" not in email.subject
    for part in (email.subject, email.text, email.html):
        assert unicodedata.is_normalized("NFC", part)
    for word in WORDS.values():
        assert unicodedata.normalize("NFD", word) not in email.text + email.html + email.subject
    for key, word in WORDS.items():
        if key in KINDS[kind]:
            assert word in email.text and word in email.html, (key, kind)
    assert f'<html lang="{language}">' in email.html
    assert email.text.rstrip().endswith(renderer.catalogue.text("footer", language))
    if "link" in KINDS[kind]:
        assert LINK in email.text
        assert f'href="{LINK.replace("&", "&amp;")}"' in email.html
    other = "en" if language == "vi" else "vi"  # the text really is in the language asked for
    assert email.subject != renderer.render(kind, other, **contexts()[kind]).subject


# Given to every link email, but this one's text does not show them.
UNUSED = {"resubmission_request": {"agency", "summary"}}


@pytest.mark.parametrize(
    "kind, variable",
    [(kind, variable) for kind in KINDS for variable in KINDS[kind] if variable not in UNUSED.get(kind, ())],
)
def test_every_variable_is_needed(renderer, kind, variable):
    context = contexts()[kind]
    del context[variable]
    with pytest.raises(UndefinedError):
        renderer.render(kind, "vi", **context)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("result", ["approved", "rejected", "changes_requested", "expired"])
def test_each_outcome_has_its_own_subject_and_words(renderer, language, result):
    email = renderer.render(
        "outcome", language, **{**contexts()["outcome"], "result": result, "decided_by": "", "comment": ""}
    )
    label = renderer.catalogue.text(f"result.{result}", language)
    assert label in email.text and label in email.html
    subjects = {
        renderer.render("outcome", language, **{**contexts()["outcome"], "result": other}).subject
        for other in ("approved", "rejected", "changes_requested", "expired")
    }
    assert len(subjects) == 4
    decided_by = renderer.catalogue.text("label.decided_by", language)
    assert decided_by not in email.text and decided_by not in email.html  # left out when empty
    with pytest.raises(UndefinedError):
        renderer.render("outcome", language, **{**contexts()["outcome"], "result": "pending"})


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_digest_for_a_finished_cycle_shows_every_status(renderer, language):
    statuses = ["waiting", "done", "rejected", "changes_requested", "expired", "not_started"]
    stages = [
        {"stage": f"{number}. Bước {number}", "status": status, "due": "01/01/2027"}
        for number, status in enumerate(statuses, 1)
    ]
    email = renderer.render(
        "cycle_digest", language, **{**contexts()["cycle_digest"], "event": "finished", "stages": stages}
    )
    started = renderer.render("cycle_digest", language, **contexts()["cycle_digest"])
    assert email.subject != started.subject
    for status in statuses:
        label = renderer.catalogue.text(f"stage_status.{status}", language)
        assert label in email.text and label in email.html
    assert SUBJECT_VARIANT["cycle_digest"] == "event"


def test_text_from_outside_is_escaped_in_html_only(renderer):
    evil = '<script>alert("x")</script>'
    context = contexts()["delivery_failure"]
    context["failures"][0]["error"] = evil
    context["failures"][1]["subject"] = evil
    email = renderer.render("delivery_failure", "vi", **context)
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert evil in email.text
    email = renderer.render("outcome", "en", **{**contexts()["outcome"], "comment": evil, "decided_by": evil})
    assert "<script>" not in email.html and evil in email.text


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_goes_out_as_a_multipart_email(renderer, kind):
    email = renderer.render(kind, "vi", **contexts()[kind])
    message = OutboxMessage(
        message_id=f"<{uuid.uuid4()}@kehoach.test>",
        subject=email.subject,
        text_body=email.text,
        html_body=email.html,
        recipients=[{"name": NAME, "email": "hanh@lang-son.example"}],
        attachments=[],
    )
    parsed = message_from_bytes(Dispatcher(None, smtp_config(25)).serialize(message), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Subject"] == email.subject
    for kind, sent in (("plain", email.text), ("html", email.html)):  # base64 text carries canonical CRLF
        assert parsed.get_body((kind,)).get_content().replace("\r\n", "\n") == sent


def test_a_deployment_override_folder_replaces_templates_and_texts(tmp_path: Path, renderer):
    (tmp_path / "reminder.txt.j2").write_text(
        "{{ _('reminder.intro') }}\n{{ name }}: {{ link }}\n-- {{ _('local.signature') }}\n", encoding="utf-8"
    )
    (tmp_path / "base.html.j2").write_text(
        '<html lang="{{ language }}"><body>{% block body %}{% endblock %}<p>{{ _("local.signature") }}</p>'
        "</body></html>\n",
        encoding="utf-8",
    )
    (tmp_path / "messages.yaml").write_text(
        'reminder.subject:\n  vi: "[Nhắc lần nữa] {stage}"\n  en: "[Reminder again] {stage}"\n'
        'local.signature:\n  vi: "Văn phòng UBND tỉnh Lạng Sơn"\n  en: "Office of the Lạng Sơn People\'s Committee"\n',
        encoding="utf-8",
    )
    own = Renderer(override_dir=tmp_path)

    email = own.render("reminder", "vi", **contexts()["reminder"])
    assert email.subject == f"[Nhắc lần nữa] {STAGE}"
    assert email.text == (
        f"{renderer.catalogue.text('reminder.intro', 'vi')}\n{NAME}: {LINK}\n-- Văn phòng UBND tỉnh Lạng Sơn\n"
    )
    assert "Văn phòng UBND tỉnh Lạng Sơn" in email.html  # the package's reminder.html.j2 on the deployment's base
    assert f'href="{LINK.replace("&", "&amp;")}"' in email.html
    assert own.render("reminder", "en", **contexts()["reminder"]).subject == f"[Reminder again] {STAGE}"
    assert unicodedata.is_normalized("NFC", email.text)

    untouched = renderer.render("reminder", "vi", **contexts()["reminder"])  # the package's own are unchanged
    assert untouched.subject.startswith("[Nhắc việc]") and "Văn phòng UBND" not in untouched.html
    assert (
        Renderer().render("approval_request", "vi", **contexts()["approval_request"]).subject
        == own.render("approval_request", "vi", **contexts()["approval_request"]).subject
    )


ATTENTION = {
    "submission_unrouted": "unrouted",
    "resubmission_unrouted": "unrouted",
    "run_failed": "restart",
    "run_crashed": "restart",
    "run_finished_open": "restart",
    "run_missing": "restart",
    "replies_unread": "replies",
    "zalo_token_failed": "zalo_token",
    "channel_failing": "channel_failing",
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_reason_for_attention_has_its_own_subject_and_words(renderer, language):
    subjects = set()
    for reason, note in ATTENTION.items():
        cycle_level = note in ("restart", "replies", "zalo_token")  # names no step, unit or due time
        context = {
            **contexts()["attention"],
            "reason": reason,
            "note": note,
            **({"stage": "", "agency": "", "due": ""} if cycle_level else {}),
        }
        email = renderer.render("attention", language, **context)
        subjects.add(email.subject)
        body = renderer.catalogue.text(f"attention.body.{reason}", language).split("{")[0]
        assert body in email.text
        assert renderer.catalogue.text(f"attention.note.{note}", language)[:40] in email.text
        due = renderer.catalogue.text("label.due", language)
        assert (f"{due}:" in email.text) is not cycle_level  # facts only when there are some
    assert len(subjects) == len(ATTENTION)


@pytest.mark.parametrize(
    "kind", ["approval_request", "submission_request", "resubmission_request", "reminder", "escalation"]
)
def test_every_link_email_offers_its_official_the_problem_link(renderer, kind):
    """A unit's officials can raise a problem with the PPC from any email that asks them to act;
    an email given no problem link says nothing of it."""
    context = contexts()[kind]
    email = renderer.render(kind, "vi", **context)
    assert "Báo cáo vướng mắc lên UBND tỉnh" in email.text and context["problem"] in email.text
    assert f'href="{context["problem"]}"' in email.html and ">Báo cáo vướng mắc<" in email.html
    bare = renderer.render(kind, "vi", **{**context, "problem": ""})
    assert "vướng mắc" not in bare.text and "vướng mắc" not in bare.html
