"""The operators' commands, in process (the fast tier; test_cli.py runs the installed script on a
live stack): `kehoach start` refuses what it cannot do before it changes anything, and records
a late start's schedule; `kehoach cycle list` and `cycle resume` find cycles by id or
KIND/PERIOD; `kehoach status` names each check and exits 1 when Prefect cannot be reached.
Each on its own database of each backend, Prefect pointed at a port where nothing listens."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from approvals.models import AuditEvent, Cycle
from tests.service.conftest import in_database as _db


def _counts(url: str) -> tuple[int, int]:
    async def count(session):
        cycles = (await session.execute(select(func.count()).select_from(Cycle))).scalar_one()
        audited = (await session.execute(select(func.count()).select_from(AuditEvent))).scalar_one()
        return cycles, audited

    return _db(url, count)


def test_start_without_prefect_is_refused_before_anything_is_recorded(kehoach, private_database):
    code, out = kehoach("start", "--year", "2025", "--late", "shift", prefect=None)
    assert code == 2 and "PREFECT_API_URL is not set" in out
    assert _counts(private_database.url) == (0, 0)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--late", "sideways"), "use shift or keep"),
        (("--month", "2025-13"), "--month"),
        (("--year", "2025"), "choose --late shift"),  # its dates passed, and nobody at a terminal to ask
    ],
    ids=["late_unknown", "month_malformed", "dates_passed_unasked"],
)
def test_start_refuses_what_it_cannot_do_and_changes_nothing(kehoach, private_database, args, said):
    code, out = kehoach("start", *args)
    assert code == 2 and said in out, out
    assert _counts(private_database.url) == (0, 0)


def test_a_late_start_records_its_schedule_before_prefect_is_asked(kehoach, private_database):
    """The choice is recorded before the run is started; with Prefect down the start fails after
    it. Until a run carries the cycle the operator may choose again (each choice audited)."""
    code, out = kehoach("start", "--year", "2025", "--late", "shift")
    assert "shifted by" in out and code == 2, out  # recorded; then Prefect could not be reached
    assert "could not be started" in out and "Run the same command again" in out and "Traceback" not in out
    cycle = _db(private_database.url, lambda s: _annual(s, "2025"))
    today = dt.datetime.now(dt.UTC).date()
    assert abs(cycle.shift_days - (today - dt.date(2025, 1, 15)).days) <= 1
    code, out = kehoach("start", "--year", "2025", "--late", "keep")
    assert "kept as planned" in out and code == 2, out
    assert _db(private_database.url, lambda s: _annual(s, "2025")).shift_days == 0
    assert _counts(private_database.url) == (1, 2)  # one cycle, two choices in the audit log


async def _annual(session, period: str) -> Cycle:
    return (await session.execute(select(Cycle).where(Cycle.kind == "annual", Cycle.period == period))).scalar_one()


def test_cycle_list_and_resume_find_cycles_by_id_or_kind_and_period(kehoach, private_database):
    assert kehoach("cycle", "list") == (0, "no cycle is under way\n")

    async def seed(session):
        open_one = Cycle(kind="annual", period="2031", starts_on=dt.date(2031, 1, 15), attention="run_crashed")
        done = Cycle(kind="annual", period="2030", starts_on=dt.date(2030, 1, 15), finished_at=dt.datetime.now(dt.UTC))
        session.add_all([open_one, done])
        await session.flush()
        return str(open_one.id)

    open_id = _db(private_database.url, seed)
    code, out = kehoach("cycle", "list")
    assert code == 0 and f"{open_id}  annual/2031" in out and "NEEDS ATTENTION: run_crashed" in out
    assert "annual/2030" not in out  # finished
    assert "annual/2031" in kehoach("cycle", "list", "--attention")[1]

    code, out = kehoach("cycle", "resume", "annual/2099")
    assert code == 2 and "no cycle 'annual/2099'" in out
    code, out = kehoach("cycle", "resume", "annual/2030")
    assert code == 1 and "finished" in out
    code, out = kehoach("cycle", "resume", open_id)  # by id; Prefect down: say so, try again later
    assert "Restarting annual/2031 (needs attention: run_crashed)" in out, out


def test_status_names_each_check_and_exits_1_while_prefect_is_down(kehoach):
    code, out = kehoach("status")
    assert code == 1, out
    lines = {line.split()[1]: line for line in out.splitlines() if line[:3] in ("ok ", "!! ")}
    assert lines["database"].startswith("ok ") and lines["migrations"].startswith("ok ")
    assert lines["prefect"].startswith("!! ") and "cannot be reached" in lines["prefect"]
    assert lines["signing"].startswith("ok ")  # development: test signers, made when first needed
    assert "outbox           0 queued" in out and "open steps       0, of which 0 overdue" in out
    code, out = kehoach("status", "--check", "database", "--check", "outbox")
    assert code == 0 and "prefect" not in out, out
    code, out = kehoach("status", "--check", "nonsense")
    assert code == 2 and "unknown check" in out


def test_status_names_a_signing_file_that_does_not_fit_the_plan(kehoach, tmp_path):
    (tmp_path / "signing.yaml").write_text(
        "trust_roots: [nowhere.pem]\ndirectors:\n  nobody: {kind: pkcs12, file: a.p12, password_env: P}\n"
    )
    code, out = kehoach("status", "--check", "signing", env={"KEHOACH_SIGNING_FILE": str(tmp_path / "signing.yaml")})
    assert code == 1, out
    assert "directors.nobody: no such official in the plan" in out and "nowhere.pem cannot be read" in out, out


def test_rehearse_is_refused_in_production_before_anything_is_made(kehoach, tmp_path):
    folder = tmp_path / "rehearsal"
    production = {
        "KEHOACH_ENVIRONMENT": "production",
        "KEHOACH_LINK_SECRET": "s" * 48,
        "KEHOACH_SIGNING_FILE": str(tmp_path / "signing.yaml"),
    }
    code, out = kehoach("rehearse", "--data-dir", str(folder), env=production)
    assert code == 2 and "Refused" in out and "KEHOACH_ENVIRONMENT=production" in out, out
    assert not folder.exists()  # not even its data folder


def test_rehearse_is_refused_against_a_database_holding_real_cycles(kehoach, private_database, tmp_path):
    async def seed(session):
        session.add(Cycle(kind="annual", period="2031", starts_on=dt.date(2031, 1, 15)))

    _db(private_database.url, seed)
    before = _counts(private_database.url)
    code, out = kehoach("rehearse", "--data-dir", str(tmp_path / "r"), "--database-url", private_database.url)
    assert code == 2 and "not rehearsals (annual/2031)" in out and "a database of its own" in out, out
    assert _counts(private_database.url) == before  # no rehearsal cycle, no audit row


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--play", "nobody_at_all"), "neither an official nor a role"),
        (("--silent", "1.5"), "the silent share is a number from 0 to 1"),
        (("--minutes", "0.5"), "between 1 minute and a real year"),
    ],
    ids=["play_unknown", "share_out_of_range", "too_fast"],
)
def test_rehearse_refuses_bad_options_before_anything_starts(kehoach, tmp_path, args, said):
    code, out = kehoach("rehearse", "--data-dir", str(tmp_path / "r"), *args)
    assert code == 2 and said in " ".join(out.split()), out
