"""The channel rules that need no provider: quiet hours per kind, SMS segments, phone numbers,
and the shipped channels.yaml."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pytest

from notifications.channels.base import KINDS, VIETNAM, UnknownKind, is_transaction, quiet_until
from notifications.channels.phones import NotAPhone, international
from notifications.channels.segments import is_gsm7, sms_segments, sms_units
from notifications.channels.templates import (
    MAX_SMS_SEGMENTS,
    TemplatesInvalid,
    read_templates,
    shipped_templates,
    too_long,
)


def at(hour: int, minute: int = 0, day: int = 7) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=VIETNAM)


def test_a_transaction_goes_out_at_any_hour():
    for moment in (at(3), at(6, 59), at(12), at(22), at(23, 59)):
        assert quiet_until("approval_request", moment) is None
        assert quiet_until("submission_request", moment.astimezone(dt.UTC)) is None


def test_other_kinds_wait_for_the_morning_in_vietnam():
    assert quiet_until("reminder", at(7)) is None
    assert quiet_until("reminder", at(21, 59)) is None
    assert quiet_until("reminder", at(6, 59)) == at(7)  # before dawn: this morning
    assert quiet_until("step_overdue", at(22)) == at(7, day=8)  # from 22:00: tomorrow morning
    late = at(23, 30).astimezone(dt.UTC)  # 16:30 UTC: the day that counts is Vietnam's
    assert late.hour == 16 and quiet_until("report_issued", late) == at(7, day=8)


def test_every_kind_is_classified_and_others_are_refused():
    assert {kind for kind, transaction in KINDS.items() if transaction} == {
        "approval_request",
        "submission_request",
        "resubmission_request",
        "escalation",
    }
    with pytest.raises(UnknownKind):
        is_transaction("daily_digest")


def test_sms_segments_gsm7_and_ucs2():
    assert sms_segments("") == 0
    assert sms_segments("a" * 160) == 1 and sms_segments("a" * 161) == 2
    assert sms_segments("a" * 306) == 2 and sms_segments("a" * 307) == 3
    assert sms_units("€") == 2 and sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2
    vietnamese = unicodedata.normalize("NFC", "Đồng chí có hồ sơ cần duyệt")
    assert not is_gsm7(vietnamese) and sms_units(vietnamese) == len(vietnamese)
    assert sms_segments("ấ" * 70) == 1 and sms_segments("ấ" * 71) == 2
    assert sms_segments("ấ" * 134) == 2 and sms_segments("ấ" * 135) == 3
    decomposed = unicodedata.normalize("NFD", "ấ" * 70)  # NFD triples the units: why texts are NFC
    assert sms_units(decomposed) == 210 and sms_segments(decomposed) == 4
    assert sms_units("🙂") == 2  # outside the BMP: two UTF-16 units


def test_phone_numbers_in_international_form():
    for written in ("0912345678", "0912 345 678", "+84 912 345 678", "84912345678", "091.234.5678"):
        assert international(written) == "84912345678"
    for wrong in ("012345678", "0212345678", "+1 415 555 0100", "09123456789", "hanh@lang-son.example"):
        with pytest.raises(NotAPhone):
            international(wrong)


def test_the_shipped_templates_fit_two_segments_with_a_long_host():
    for kind in shipped_templates().values():
        sample = kind.sms_sample("https://kehoach.ubnd.langson.gov.vn")
        assert sms_segments(sample) <= MAX_SMS_SEGMENTS, sample
        assert too_long(kind, "https://kehoach.ubnd.langson.gov.vn") is None
        assert unicodedata.is_normalized("NFC", kind.sms)
    approval = shipped_templates()["approval_request"]
    data = approval.zns_data({"name": "Nông Thị Hạnh", "link": "https://x.example/a/1", "due": "17:00"})
    assert data["duong_dan"] == "https://x.example/a/1"  # the link is the button's
    assert "https://" not in "".join(v for k, v in data.items() if k != "duong_dan")
    text = approval.sms_text({"due": "17:00", "link": "https://x.example/a/long", "short_link": "https://x/l/1"})
    assert text.endswith("https://x/l/1")  # the short link when there is one
    assert too_long(approval, "https://" + "x" * 60 + ".example") == 3  # a host that long does not fit


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("ten_can_bo: name", "duong_dan2: link"), "a link goes in the button"),
        (
            ('sms: "Đồng chí có hồ sơ cần duyệt, hạn {due}. Duyệt tại: {link}"', 'sms: "Duyệt: {stage} {link}"'),
            "unknown",
        ),
        (("Duyệt tại: {link}", "Duyệt trên máy tính."), "needs {link}"),
        (('    button: {label: "Xem và duyệt", param: duong_dan}\n  sms: "Đồng', '  sms: "Đồng'), "needs a button"),
        (("han_xu_ly: due}", "han_xu_ly: deadline}"), "has no value 'deadline'"),
    ],
)
def test_a_broken_templates_file_is_refused(tmp_path, change, complaint):
    from notifications.channels.templates import TEMPLATES_FILE

    text = TEMPLATES_FILE.read_text(encoding="utf-8")
    old, new = change
    assert old in text
    broken = tmp_path / "channels.yaml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(TemplatesInvalid) as refused:
        read_templates(broken)
    assert complaint in str(refused.value) and "approval_request" in str(refused.value)
