"""How an official is reached (approvals/plan/reach.py): the phone forms people write, each
stored as +84...; the numbers refused, each saying why; `Official.reach`, the channels in the
official's order with the address of each, only those they agreed to by the day; officials
made by `unit_officials`; and the shipped plan. `plan check`'s file, line and path for each
rule are in tests/test_plan_check.py (the files in tests/plans/)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from approvals.config import PACKAGED_PLAN
from approvals.plan import Official, PlanError, load_plan, parse_plan
from approvals.plan.reach import Address, Channel, vietnamese_mobile

MINIMAL = (Path(__file__).resolve().parents[1] / "plans/minimal-valid.yaml").read_text(encoding="utf-8")
TITLE = '    title: {vi: "Giám đốc Sở", en: "Director"}\n'  # the last line of its one official


def with_official_lines(extra: str) -> str:
    assert MINIMAL.count(TITLE) == 1
    return MINIMAL.replace(TITLE, TITLE + extra)


@pytest.mark.parametrize(
    "written",
    [
        "0912345678",
        "+84912345678",
        "84912345678",
        "0912 345 678",
        "0912.345.678",
        "+84 912 345 678",
        "84 91 234 5678",
        "091-234-5678",
        " 0912 345 678 ",
        84912345678,  # YAML's reading of an unquoted 84912345678 or +84912345678
    ],
)
def test_each_form_people_write_is_stored_as_e164(written: str | int):
    assert vietnamese_mobile(written) == "+84912345678"


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("0321 234 567", "+84321234567"),
        ("0521234567", "+84521234567"),
        ("0701234567", "+84701234567"),
        ("+84 812 345 678", "+84812345678"),
        ("0987654321", "+84987654321"),
    ],
)
def test_every_mobile_range_is_accepted(written: str, stored: str):
    assert vietnamese_mobile(written) == stored


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("0205 3812 345", "phone '0205 3812 345' is a landline (02x): Zalo and SMS reach a mobile number"),
        ("+84 205 3812 345", "is a landline (02x)"),
        ("0412 345 678", "is not a Vietnamese mobile number: those start with 03, 05, 07, 08 or 09"),
        ("0662 345 678", "is not a Vietnamese mobile number"),
        ("01662 345 678", "is not a Vietnamese mobile number"),  # an 11-digit number from before 2018
        ("091 234 567", "phone '091 234 567' has 9 digits from its 0: a Vietnamese mobile number has 10"),
        ("09123 456 789", "has 11 digits from its 0"),
        ("+1 415 555 0100", "is not a Vietnamese number (+84)"),
        ("+84 0912 345 678", "keeps the 0 after 84"),
        ("912 345 678", "must start with 0 or +84"),
        ("0912 345 67x", "may hold only digits, spaces, dots, hyphens and a leading +"),
        ("(+84) 912 345 678", "may hold only digits"),
        ("", "may hold only digits"),
        (53070776, "YAML read it as the number 53070776; put it in quotes"),  # unquoted 0312345670: octal
        (912345678, "YAML read it as the number 912345678"),
    ],
)
def test_a_number_zalo_and_sms_cannot_reach_is_refused_with_why(written: str | int, why: str):
    with pytest.raises(ValueError) as refused:
        vietnamese_mobile(written)
    assert why in str(refused.value)


@pytest.mark.parametrize(
    "line", ["phone: 0912345678", "phone: +84912345678", "phone: 84912345678", 'phone: "0912.345.678"']
)
def test_the_plan_file_stores_each_form_as_e164(line: str):
    """Unquoted, YAML reads the last two as numbers and the first as text: all are the same phone."""
    plan = parse_plan(with_official_lines(f"    {line}\n"), "phone.yaml")
    assert plan.officials[0].phone == "+84912345678"


def test_a_phone_yaml_reads_as_octal_is_refused_at_its_line():
    with pytest.raises(PlanError) as refused:
        parse_plan(with_official_lines("    phone: 0312345670\n"), "octal.yaml")
    [problem] = refused.value.problems
    assert (problem.line, problem.path) == (29, "officials[0].phone")
    assert "put it in quotes" in problem.message


def official(**reach: object) -> Official:
    return Official.model_validate(
        {
            "id": "dost_director",
            "name": "Nông Thị Hạnh",
            "email": "giamdoc@dost.example",
            "agency": "dost",
            "roles": ["lead_agency.director"],
            "title": {"vi": "Giám đốc Sở", "en": "Director"},
            **reach,
        }
    )


def test_reach_follows_the_officials_order_with_each_channels_address():
    director = official(
        phone="0500 000 101", channels=["sms", "zalo", "email"], consent={"zalo": "2025-03-10", "sms": "2025-03-10"}
    )
    assert director.reach() == [
        Address(Channel.sms, "+84500000101"),
        Address(Channel.zalo, "+84500000101"),
        Address(Channel.email, "giamdoc@dost.example"),
    ]
    assert [a.channel.value for a in director.reach()] == ["sms", "zalo", "email"]  # the names the adapters use


def test_reach_gives_a_channel_only_from_the_day_the_official_agreed_to_it():
    director = official(
        phone="0500 000 101", channels=["zalo", "sms", "email"], consent={"zalo": "2025-03-10", "sms": "2025-04-01"}
    )

    def channels(on: dt.date | None) -> list[str]:
        return [a.channel.value for a in director.reach(on)]

    assert channels(dt.date(2025, 3, 9)) == ["email"]
    assert channels(dt.date(2025, 3, 10)) == ["zalo", "email"]
    assert channels(dt.date(2025, 3, 31)) == ["zalo", "email"]
    assert channels(dt.date(2025, 4, 1)) == ["zalo", "sms", "email"]
    assert channels(None) == ["zalo", "sms", "email"]


def test_an_official_is_reached_by_email_alone_unless_their_channels_say_more():
    """A phone and consent do not make a channel: the official's channels do (email by default)."""
    assert official().reach() == [Address(Channel.email, "giamdoc@dost.example")]
    agreed = official(phone="0500 000 101", consent={"zalo": "2025-03-10", "sms": "2025-03-10"})
    assert agreed.channels == [Channel.email]
    assert agreed.reach() == [Address(Channel.email, "giamdoc@dost.example")]


def test_every_rule_is_one_message_when_several_are_broken():
    with pytest.raises(ValueError) as refused:
        official(channels=["email", "zalo", "zalo"])
    message = str(refused.value)
    for fragment in (
        "'zalo' is listed twice (channels[1] and channels[2])",
        "'zalo' needs a phone",
        "'zalo' needs the official's consent",
        "email must come last",
    ):
        assert fragment in message, message


def with_the_unit_example(text: str) -> str:
    """The shipped plan with its commented example of a unit's entry with a phone made real."""
    lines = text.splitlines(keepends=True)
    start = lines.index("  # - roles: [unit.reporter]\n")
    end = start + 1
    while lines[end].startswith("  #   "):
        end += 1
    assert lines[end - 1].startswith("  #   consent:")
    return "".join(lines[:start] + [line.replace("  # ", "  ", 1) for line in lines[start:end]] + lines[end:])


def test_an_official_made_for_a_unit_is_reached_as_its_entry_says():
    text = with_the_unit_example(PACKAGED_PLAN.read_text(encoding="utf-8"))
    plan = parse_plan(text, "with-a-unit-phone.yaml", years=(2024, 2026))
    dong_dang = plan.official("pc_commune_dong_dang_reporter")
    assert dong_dang is not None and dong_dang.roles == ["unit.reporter"]
    assert dong_dang.reach(dt.date(2025, 7, 1)) == [
        Address(Channel.zalo, "+84500000201"),
        Address(Channel.sms, "+84500000201"),
        Address(Channel.email, "baocao.pc-commune-dong-dang@lang-son.example"),
    ]
    assert [a.channel for a in dong_dang.reach(dt.date(2025, 6, 30))] == [Channel.email]
    neighbour = plan.official("pc_commune_that_khe_reporter")
    assert neighbour is not None
    assert neighbour.reach() == [Address(Channel.email, "baocao.pc-commune-that-khe@lang-son.example")]


def test_the_shipped_plan_reaches_four_approvers_by_zalo_then_sms_then_email():
    plan = load_plan(PACKAGED_PLAN)
    by_phone = {o.id: o.reach() for o in plan.officials if o.phone is not None}
    assert set(by_phone) == {"dost_director", "dcst_director", "dof_director", "ppc_vice_chair"}
    for official_id, reach in by_phone.items():
        found = plan.official(official_id)
        assert found is not None and found.phone is not None and found.phone.startswith("+84500000")
        assert reach == [
            Address(Channel.zalo, found.phone),
            Address(Channel.sms, found.phone),
            Address(Channel.email, str(found.email)),
        ]
    others = [o for o in plan.officials if o.id not in by_phone]
    assert len(others) > 100
    assert all(o.reach() == [Address(Channel.email, str(o.email))] for o in others)
