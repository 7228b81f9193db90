"""`kehoach plan check`: the real command on good and broken plan files, in process through
Click's runner (its own stdout, stderr and exit code), and once as the installed script.

Each file in tests/plans/ other than minimal-valid.yaml is minimal-valid.yaml
with one deliberate defect; BROKEN says what `plan check` must print for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from approvals.plan import load_plan
from service.cli import app

ROOT = Path(__file__).resolve().parent.parent
PLANS = Path("tests/plans")  # relative to ROOT, so stderr names the file the way a user typed it
KEHOACH = Path(sys.executable).parent / "kehoach"

# file -> (line, path inside the plan, distinctive fragment of the message)
BROKEN: dict[str, tuple[int, str, str]] = {
    "unknown-role-in-approvers.yaml": (40, "cycles[0].stages[0].approvers[0]", "unknown role 'lead_agency.directr'"),
    "unknown-role-of-official.yaml": (27, "officials[0].roles[0]", "unknown role 'lead_agency.manager'"),
    "unknown-agency-of-official.yaml": (26, "officials[0].agency", "unknown agency 'dots'"),
    "unknown-acting-agency.yaml": (39, "cycles[0].stages[0].acting_agencies[0]", "unknown agency 'dic'"),
    "unknown-successor-agency.yaml": (14, "agencies[0].successors[0]", "unknown agency 'ppc_new'"),
    "duplicate-agency-id.yaml": (17, "agencies[2].id", "duplicate agency id 'dost' (first used at agencies[1])"),
    "duplicate-stage-id.yaml": (
        43,
        "cycles[0].stages[1].id",
        "duplicate stage id 'direction' (first used at cycles[0].stages[0])",
    ),
    "duplicate-key.yaml": (29, "officials[0].agency", "duplicate key 'agency' (first at line 26)"),
    "validity-ends-before-start.yaml": (
        17,
        "agencies[1].valid_to",
        "valid_to 2025-06-30 is before valid_from 2025-07-01",
    ),
    "official-without-email.yaml": (23, "officials[0].email", "required field is missing"),
    "bad-timezone.yaml": (8, "plan.timezone", "unknown time zone 'Asia/Ha_Noi'"),
    "yaml-syntax-error.yaml": (37, "(top level)", "YAML syntax error: mapping values are not allowed here"),
    "unclosed-flow-sequence.yaml": (
        40,
        "(top level)",
        "YAML syntax error: expected ',' or ']', but got ':' (while parsing a flow sequence started at line 39)",
    ),
    "unknown-field.yaml": (42, "cycles[0].stages[0].reminder_before_days", "unknown field (check the spelling)"),
    "bad-email.yaml": (25, "officials[0].email", "not a valid email address"),
    "due-day-not-in-month.yaml": (41, "cycles[0].stages[0].due.day", "month 2 has no day 31"),
    "due-both-forms.yaml": (41, "cycles[0].stages[0].due", "give either offset_days, or month and day"),
    "unknown-policy.yaml": (
        41,
        "cycles[0].stages[0].policy",
        "unknown policy 'majority' (use any, all, quorum or sequence)",
    ),
    "quorum-exceeds-approvers.yaml": (
        42,
        "cycles[0].stages[0].quorum",
        "quorum 2 is more than the 1 official holding the approver roles",
    ),
    "submission-without-requester.yaml": (
        35,
        "cycles[0].stages[0]",
        "a stage of kind 'budget' needs a 'requester' role (who submits it)",
    ),
    "empty.yaml": (1, "(top level)", "the plan must be a YAML mapping"),
    "fan-out-unit-without-officer.yaml": (
        51,
        "cycles[0].stages[0].acting_kinds",
        "nobody holds 'unit.reporter' for unit 'dof' (Department of Finance): stage 'direction' could not ask it",
    ),
    "official-name-with-line-break.yaml": (
        24,
        "officials[0].name",
        "contains a control character (U+000D), such as a line break",
    ),
    "address-with-a-quote.yaml": (25, "officials[0].email", "has a character email headers refuse"),
    "report-recipient-without-email.yaml": (
        31,
        "report.recipients[0]",
        "'ppc' (or an agency that succeeded it) has no email",
    ),
    "consolidation-without-report-stage.yaml": (
        49,
        "cycles[0].stages[1].kind",
        "a consolidation stage compiles the units' reports: it needs a stage of kind",
    ),
    "content-area-no-cycle-carries.yaml": (
        31,
        "content_areas[0].cadences",
        "no cycle carries content area 'environment' at its yearly cadence",
    ),
    "shows-a-later-stage.yaml": (
        43,
        "cycles[0].stages[0].shows[0]",
        "'guidance' is a later stage of this cycle: a stage can only show",
    ),
    "acknowledged-approval.yaml": (
        43,
        "cycles[0].stages[0].acknowledge",
        "only a stage that receives a submission is acknowledged",
    ),
    "content-area-at-a-cadence-it-lacks.yaml": (
        36,
        "cycles[0].content_areas[0]",
        "content area 'culture_society' runs monthly, not yearly",
    ),
    "split-agency-without-a-duty.yaml": (
        47,
        "cycles[0].stages[0].acting_agencies[0]",
        "'dic' split: its duties went to dost and dcst, and the plan does not say which takes this one",
    ),
    "per-content-area-without-areas.yaml": (
        43,
        "cycles[0].stages[0].per_content_area",
        "cycle 'annual' carries no content areas",
    ),
    "succession-to-a-non-successor.yaml": (
        22,
        "agencies[2].succession[0].to",
        "'ppc' is not among the successors of 'dic'",
    ),
    "role-follows-a-split-without-its-duty.yaml": (
        30,
        "roles[0].carried_by.duty",
        "'dic' split: its duties went to dost and dcst, and the plan does not say",
    ),
    "consolidation-without-report-section.yaml": (
        46,
        "cycles[0].stages[1].kind",
        "a consolidation stage needs the plan's 'report' section",
    ),
    "duplicate-field-id.yaml": (
        45,
        "cycles[0].stages[0].fields[1].id",
        "duplicate field id 'themes' (first used at cycles[0].stages[0].fields[0])",
    ),
    "escalate-to-an-approver.yaml": (
        42,
        "cycles[0].stages[0].escalate_to",
        "'lead_agency.director' already decides this step",
    ),
    "keep-waiting-with-nobody-to-tell.yaml": (
        42,
        "cycles[0].stages[0].on_timeout",
        "keep_waiting with nobody to tell: the step could wait forever",
    ),
    "non-ascii-agency-id.yaml": (
        17,
        "agencies[2].id",
        "id 'sở_tài_chính' must use lowercase ASCII letters, digits and _, starting with a letter",
    ),
    # How an official is reached (approvals/plan/reach.py): phone, channels, consent.
    "zalo-without-phone.yaml": (29, "officials[0].channels", "'zalo' needs a phone: give the official's mobile"),
    "sms-without-consent.yaml": (
        30,
        "officials[0].channels",
        "'sms' needs the official's consent (Decree 13/2023/NĐ-CP): give the day they agreed (consent: {sms: ",
    ),
    "email-not-last.yaml": (30, "officials[0].channels", "email must come last: it is the channel of record"),
    "channels-without-email.yaml": (30, "officials[0].channels", "email must be among the channels, last"),
    "duplicate-channel.yaml": (30, "officials[0].channels", "'sms' is listed twice (channels[0] and channels[1])"),
    "unknown-channel.yaml": (32, "officials[0].channels[1]", "unknown channel 'viber' (use zalo, sms or email)"),
    "landline-phone.yaml": (
        29,
        "officials[0].phone",
        "phone '0205 3812 345' is a landline (02x): Zalo and SMS reach a mobile number (03x, 05x, 07x, 08x or 09x)",
    ),
    "unquoted-phone.yaml": (29, "officials[0].phone", "YAML read it as the number 53070776; put it in quotes"),
    "phone-on-units-of-a-kind.yaml": (
        29,
        "unit_officials[0].phone",
        "a phone reaches one person, and this entry makes an official for several units",
    ),
}

# FILE:LINE: PATH: MESSAGE -- paths never contain ": ", messages may.
PROBLEM = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<path>.+?): (?P<message>.+)$")


OUTPUT_ENV = {"NO_COLOR": "1", "COLUMNS": "120", "PYTHONIOENCODING": "utf-8"}


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def kehoach(*args: str) -> Ran:
    """The command in this process, from the repository's root (so files are named as typed)."""
    with contextlib.chdir(ROOT):
        result = CliRunner().invoke(app, list(args), env=OUTPUT_ENV, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def test_kehoach_script_is_installed_next_to_python():
    assert KEHOACH.is_file(), f"{KEHOACH} not found; is the package installed in this venv?"


@pytest.mark.processes
def test_the_installed_script_lists_the_plan_command_and_fails_a_broken_plan():
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}} | OUTPUT_ENV

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KEHOACH), *args], cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120
        )

    shown = run("--help")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^\W*plan\s+Check and inspect plan files", shown.stdout, re.M), shown.stdout
    broken = run("plan", "check", str(PLANS / "bad-timezone.yaml"))
    assert broken.returncode == 1 and broken.stdout == ""
    assert broken.stderr.startswith(f"{PLANS / 'bad-timezone.yaml'}:8: plan.timezone: unknown time zone"), broken.stderr


def test_help_lists_plan_command():
    result = kehoach("--help")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\W*plan\s+Check and inspect plan files", result.stdout, re.M), result.stdout


def test_lang_son_plan_passes_with_summary():
    agencies = yaml.safe_load((ROOT / "plans/lang-son.yaml").read_text(encoding="utf-8"))["agencies"]
    result = kehoach("plan", "check", "plans/lang-son.yaml", "--on", "2025-07-01")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("plans/lang-son.yaml: OK: ")
    assert re.search(rf"^\s+agencies: {len(agencies)} \(\d+ in force on 2025-07-01: ", result.stdout, re.M), (
        result.stdout
    )


def test_plan_check_counts_the_officials_each_channel_reaches_on_the_day():
    """The DOST and DCST directors agreed to Zalo and SMS on 10 March 2025, the DoF director on
    12 March, the PPC vice-chair on 1 April: a channel counts from the day of its consent."""
    everyone = len(load_plan(ROOT / "plans/lang-son.yaml").officials)
    for day, by_phone in (("2025-03-09", 0), ("2025-03-11", 2), ("2025-07-01", 4)):
        result = kehoach("plan", "check", "plans/lang-son.yaml", "--on", day)
        assert result.returncode == 0, result.stderr
        shown = f"channels on {day}: {by_phone} by Zalo, {by_phone} by SMS (each with a phone and consent), "
        assert f"  {shown}all {everyone} by email (the channel of record)\n" in result.stdout, result.stdout


def test_minimal_valid_plan_passes():
    result = kehoach("plan", "check", str(PLANS / "minimal-valid.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "OK: Minimal plan" in result.stdout
    assert "agencies: 2 " in result.stdout
    assert "roles: 1, officials: 1, time zone: Asia/Ho_Chi_Minh" in result.stdout


def test_every_broken_file_is_listed():
    on_disk = {p.name for p in (ROOT / PLANS).glob("*.yaml")} - {"minimal-valid.yaml"}
    assert on_disk == set(BROKEN)


def first_problem(name: str) -> tuple[Ran, re.Match[str]]:
    result = kehoach("plan", "check", str(PLANS / name))
    lines = result.stderr.splitlines()
    assert lines, f"nothing on stderr for {name}; stdout: {result.stdout}"
    match = PROBLEM.match(lines[0])
    assert match, f"first stderr line is not FILE:LINE: PATH: MESSAGE: {lines[0]!r}"
    return result, match


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_plan_is_reported(name: str):
    line, path, fragment = BROKEN[name]
    result, problem = first_problem(name)
    shown = str(PLANS / name)
    assert result.returncode == 1
    assert result.stdout == ""
    assert problem["file"] == shown
    assert problem["path"] == path
    assert fragment in problem["message"]
    assert int(problem["line"]) == line, result.stderr
    # One defect per file, so exactly one problem, then the closing count.
    assert result.stderr.splitlines()[1:] == [f"{shown}: 1 problem(s); the plan was not loaded."]


def test_broken_plans_each_give_their_own_message():
    seen: dict[str, str] = {}
    for name in sorted(BROKEN):
        _, problem = first_problem(name)
        what = f"{problem['path']}: {problem['message']}"
        assert what not in seen, f"{name} and {seen[what]} both report {what!r}"
        seen[what] = name


def test_nfd_names_are_loaded_as_nfc(tmp_path: Path):
    source = (ROOT / PLANS / "minimal-valid.yaml").read_text(encoding="utf-8")
    nfd = unicodedata.normalize("NFD", source)
    assert nfd != source and not unicodedata.is_normalized("NFC", nfd)
    file = tmp_path / "nfd.yaml"
    file.write_bytes(nfd.encode("utf-8"))

    plan = load_plan(file)

    texts = [
        plan.plan.title.vi,
        *(a.name.vi for a in plan.agencies),
        *(r.name.vi for r in plan.roles),
        *(o.name for o in plan.officials),
        *(o.title.vi for o in plan.officials),
        *(c.name.vi for c in plan.cycles),
        *(s.name.vi for c in plan.cycles for s in c.stages),
    ]
    assert all(unicodedata.is_normalized("NFC", t) for t in texts), texts
    assert plan.officials[0].name == "Nông Thị Hạnh" == unicodedata.normalize("NFC", "Nông Thị Hạnh")
    assert plan.agencies[1].name.vi == "Sở Khoa học và Công nghệ"
    assert plan.plan.title.vi == unicodedata.normalize("NFC", "Kế hoạch tối thiểu")


def test_the_shipped_plan_carries_every_content_area_at_each_of_its_cadences():
    """Policy, the economy and the environment yearly (the annual cycle), culture and society
    monthly, the economy also per event: as the plan gives them (its section II)."""
    plan = load_plan(ROOT / "plans/lang-son.yaml")
    carried = {(area, cycle.cadence.value) for cycle in plan.cycles for area in cycle.content_areas}
    assert carried == {
        ("policy", "yearly"),
        ("economy", "yearly"),
        ("environment", "yearly"),
        ("culture_society", "monthly"),
        ("economy", "per_event"),
    }
    assert {a.id: sorted(c.value for c in a.cadences) for a in plan.content_areas} == {
        "policy": ["yearly"],
        "economy": ["per_event", "yearly"],
        "culture_society": ["monthly"],
        "environment": ["yearly"],
    }


def test_plan_check_says_which_successions_are_assumed():
    result = kehoach("plan", "check", "plans/lang-son.yaml")
    assert "succession: dic -> dcst for its press duty: ASSUMED (not verified)" in result.stdout
    assert "succession: dic -> dost for its lead duty: verified" in result.stdout
