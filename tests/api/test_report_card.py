"""The dashboard follows each cycle's own schedule (issue 22): the units' annual reports are due
and overdue on the dates of the cycle's calendar, shifted or rehearsed, never before their step
has opened; stage 6 says it is the implementation period, with its monthly and per-event
cycles; the first screen shows the cycles' progress, and every unit is one click away."""

from __future__ import annotations

import datetime as dt
import html
import re
from zoneinfo import ZoneInfo

import time_machine

from approvals.routing import stages, steps
from approvals.statuses import StageStatus
from tests.api.conftest import open_request
from tests.support.paces import REHEARSED

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def units_table(page: str, year: int) -> dict[str, str]:
    """Unit -> the status shown for it, on the units page."""
    table = html.unescape(page[page.index(f"Báo cáo năm {year}") :])
    table = table[: table.index("</table>")]
    return dict(re.findall(r"<tr><td>([^<]+)</td>.*?<span[^>]*>([^<]+)</span>", table, re.S))


async def _cycle(database, year: int, *, shift_days: int = 0, pace=None):
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=str(year), starts_on=dt.date(year, 1, 15)
        )
        cycle.shift_days = shift_days
        if pace is not None:
            pace.mark(cycle, cycle.starts_on)
        return cycle.id


async def test_a_shifted_cycle_owes_nothing_before_its_shifted_opening(client, accounts, database):
    """The demo's case of 4 December: a cycle started 324 days late has its dates moved; on
    4 December its report step (1 October, moved to 20 August next year) has not opened, so no
    unit is past due, and the card gives the moved dates, not the plan's."""
    await _cycle(database, 2063, shift_days=324)
    with time_machine.travel(dt.datetime(2063, 12, 4, 10, tzinfo=TZ), tick=False):
        overview = (await client.get("/?year=2063", headers=accounts.as_viewer)).text
        page = (await client.get("/reports/annual/2063/units", headers=accounts.as_viewer)).text
    card = html.unescape(overview[overview.index('id="annual-report"') :])
    assert "Mở ngày 20/08/2064" in card and "18/10/2064" in card  # 1/10 and 29/11 moved by 324 days
    assert "29/11/2063" not in card and "Quá hạn" not in card
    rows = units_table(page, 2063)
    assert len(rows) >= 85 and set(rows.values()) == {"Chưa đến ngày mở"}
    assert "quá hạn" not in html.unescape(page)  # neither "overdue" nor "deadline passed"


async def test_the_same_cycle_is_due_on_its_shifted_date_once_the_step_opened(client, accounts, database, settings):
    await _cycle(database, 2064, shift_days=100)
    await open_request(
        database,
        settings,
        cycle_kind="annual",
        stage_id="annual_report",
        period="2064",
        starts_on=dt.date(2064, 1, 15),
        subject="dost",
        now=dt.datetime(2065, 1, 10, 9, tzinfo=TZ),
    )
    # 29 November + 100 days = 9 March 2065: on 1 March the step is open, nobody is late.
    with time_machine.travel(dt.datetime(2065, 3, 1, 10, tzinfo=TZ), tick=False):
        page = (await client.get("/reports/annual/2064/units", headers=accounts.as_viewer)).text
    rows = units_table(page, 2064)
    assert rows["Sở Khoa học và Công nghệ"] == "Đang chờ phê duyệt"
    assert set(rows.values()) == {"Chưa bắt đầu", "Đang chờ phê duyệt"}
    assert "09/03/2065" in page and "còn 8 ngày" in page
    # The day after the shifted due day, the units that never started are past the deadline.
    with time_machine.travel(dt.datetime(2065, 3, 10, 10, tzinfo=TZ), tick=False):
        page = (await client.get("/reports/annual/2064/units", headers=accounts.as_viewer)).text
    assert "đã quá hạn nộp" in html.unescape(page) and units_table(page, 2064)["Sở Khoa học và Công nghệ"] == "Quá hạn"


async def test_a_rehearsal_is_shown_on_its_own_compressed_calendar(client, accounts, database):
    """A rehearsal's year lasts 30 minutes from when it began: ten minutes in, its calendar
    stands in May, so the report step (1 October) has not opened; 28 minutes in, 21 December,
    its due day (29 November) has passed. The card names the rehearsal's days, not the wall's."""
    await _cycle(database, 2062, pace=REHEARSED)
    began = REHEARSED.wall(dt.datetime(2062, 1, 15, tzinfo=TZ), dt.date(2062, 1, 15))
    with time_machine.travel(began + dt.timedelta(minutes=10), tick=False):
        early = (await client.get("/reports/annual/2062/units", headers=accounts.as_viewer)).text
    assert "Mở ngày 01/10/2062" in early and "29/11/2062" in early
    assert set(units_table(early, 2062).values()) == {"Chưa đến ngày mở"}
    with time_machine.travel(began + dt.timedelta(minutes=28), tick=False):
        late = (await client.get("/reports/annual/2062/units", headers=accounts.as_viewer)).text
        overview = (await client.get("/?year=2062", headers=accounts.as_viewer)).text
    assert set(units_table(late, 2062).values()) == {"Chưa bắt đầu"} and "đã quá hạn nộp" in html.unescape(late)
    # Both pages say it is a rehearsal, first thing; a year of real cycles does not.
    for page in (early, late, overview):
        assert "DIỄN TẬP: đây là một đợt diễn tập" in html.unescape(page[: page.index("<h1")])
    # ... and which day of its calendar it is: 21 December, 28 minutes into a year of 30.
    day = (dt.datetime(2062, 1, 15, tzinfo=TZ) + dt.timedelta(minutes=28) * REHEARSED.speed).strftime("%d/%m/%Y")
    assert day == "21/12/2062"
    assert f"Hôm nay trên lịch diễn tập: {day}." in html.unescape(late) and day in html.unescape(overview)
    assert "lịch diễn tập: 16/05/2062" in html.unescape(early)  # 10 minutes in
    await _cycle(database, 2065)
    assert "DIỄN TẬP" not in html.unescape((await client.get("/?year=2065", headers=accounts.as_viewer)).text)


async def test_stage_6_is_the_implementation_period_with_its_own_cycles(client, accounts, database):
    """Stage 6 has no request: while the chain is in it, it is under way, never "waiting for
    approval" with 0/0, and it counts the year's monthly and per-event cycles."""
    annual = await _cycle(database, 2061)
    async with database.transaction() as session:
        await stages.set_stage_status(
            session, cycle_id=annual, stage="implementation", status=StageStatus.waiting, now=dt.datetime.now(dt.UTC)
        )
        for month in ("2061-03", "2061-04"):
            await steps.get_or_create_cycle(
                session, kind="culture_society_monthly", period=month, starts_on=dt.date(2061, int(month[-2:]), 1)
            )
        done = await steps.get_or_create_cycle(
            session, kind="culture_society_monthly", period="2061-02", starts_on=dt.date(2061, 2, 1)
        )
        done.finished_at = dt.datetime(2061, 2, 26, tzinfo=dt.UTC)
        await steps.get_or_create_cycle(
            session, kind="economy_event", period="2061-05-20-expo", starts_on=dt.date(2061, 5, 20)
        )
    for language, words in (
        ("vi", ("Đang triển khai", "3 kỳ, 2 đang mở", "1 kỳ, 1 đang mở")),
        ("en", ("Under way", "3, 2 open", "1, 1 open")),
    ):
        page = html.unescape((await client.get(f"/?year=2061&lang={language}", headers=accounts.as_viewer)).text)
        row = page[page.index("<td>6</td>") :]
        row = row[: row.index("</tr>")]
        assert all(word in row for word in words), (language, row)
        assert "Đang chờ phê duyệt" not in row and "Waiting for approval" not in row and "/0<" not in row


async def test_the_first_screen_shows_the_cycles_before_the_report_card(client, accounts, database):
    """The overview leads with the cycles' progress; the report card is a summary with a link to
    every unit, not an 89-row table."""
    await _cycle(database, 2060)
    page = (await client.get("/?year=2060", headers=accounts.as_viewer)).text
    cycles, card = page.index("Năm 2060"), page.index('id="annual-report"')
    assert cycles < card < len(page)
    assert "<table>" not in page[card:] and 'href="/reports/annual/2060/units"' in page[card:]
    assert "Chưa đến ngày mở: " in html.unescape(page[card:])
