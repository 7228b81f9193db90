"""The dashboard: login (bearer token or the login form's signed cookie), the overview with
the overdue list and the annual reports, a request's timeline; the link pages unchanged."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid

import httpx
import pytest
from sqlalchemy import delete, update

from approvals.db import utcnow
from approvals.models import ApprovalRequest
from notifications.models import ChannelOutboxMessage
from service.api.auth import SESSION_COOKIE, sign_session
from tests.api.conftest import open_request


async def _login(client: httpx.AsyncClient, token: str, **kwargs) -> httpx.Response:
    return await client.post("/login", data={"token": token}, **kwargs)


@pytest.mark.parametrize("path", ["/", "/?year=2091", "/requests/00000000-0000-0000-0000-000000000000"])
async def test_anonymous_visitors_are_sent_to_the_login_form(client, path):
    response = await client.get(path)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    english = await client.get(path + ("&" if "?" in path else "?") + "lang=en")
    assert english.headers["location"] == "/login?lang=en"
    form = await client.get("/login")
    assert form.status_code == 200 and 'name="token"' in form.text and "Đăng nhập" in form.text
    assert form.headers["cache-control"] == "no-store"


async def test_the_login_form_sets_a_signed_strict_httponly_cookie(client, accounts):
    wrong = await _login(client, "kh_wrong")
    assert wrong.status_code == 401 and SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
    assert "Mã truy cập không đúng" in wrong.text
    response = await _login(client, accounts.viewer)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie
    page = await client.get("/")
    assert page.status_code == 200 and "Việc quá hạn" in page.text
    assert page.headers["cache-control"] == "no-store"

    out = await client.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (await client.get("/")).status_code == 303


async def test_a_login_posted_from_another_site_is_refused(client, accounts):
    response = await _login(client, accounts.coordinator, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and "set-cookie" not in response.headers
    response = await _login(client, accounts.coordinator, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403


async def test_tampered_expired_or_disabled_sessions_are_not_accepted(app, client, accounts, settings, database):
    await _login(client, accounts.coordinator)
    good = client.cookies[SESSION_COOKIE]
    version, account, expires, signature = good.split(".")
    secret = settings.link_secret_bytes()
    bad = [
        f"{version}.{uuid.uuid4().hex}.{expires}.{signature}",  # another account, same signature
        f"{version}.{account}.{int(expires) + 3600}.{signature}",  # a later expiry
        f"{version}.{account}.{expires}.{signature[:-2]}",
        sign_session(secret, uuid.UUID(hex=account), utcnow() - dt.timedelta(hours=9)),  # expired
        sign_session(b"another key", uuid.UUID(hex=account), utcnow()),
        "garbage",
        "",
    ]
    for value in bad:
        client.cookies.set(SESSION_COOKIE, value, domain="kehoach.test")
        assert (await client.get("/")).status_code == 303, value
    client.cookies.set(SESSION_COOKIE, good, domain="kehoach.test")
    assert (await client.get("/")).status_code == 200

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kehoach.test") as other:
        await _login(other, accounts.disabled)
        assert (await other.get("/")).status_code == 303


async def test_a_bearer_token_opens_the_dashboard_too(client, accounts):
    assert (await client.get("/", headers=accounts.as_viewer)).status_code == 200
    assert (await client.get("/", headers=accounts.auth("kh_wrong"))).status_code == 401


async def test_the_overview_shows_an_overdue_request_sorted_by_lateness(client, accounts, database, settings):
    later = await open_request(database, settings, days_late=3)
    earlier = await open_request(database, settings, days_late=120)
    page = (await client.get("/", headers=accounts.as_viewer)).text
    assert f'href="/requests/{later.request_id}"' in page and f'href="/requests/{earlier.request_id}"' in page
    assert page.index(str(earlier.request_id)) < page.index(str(later.request_id))
    assert "trễ 3 ngày" in page and "trễ 120 ngày" in page
    assert "UBND tỉnh xử lý vướng mắc" in page and "Dương Xuân Huyên" in page
    english = (await client.get("/?lang=en", headers=accounts.as_viewer)).text
    assert "Overdue steps" in english and "3 days late" in english
    assert f'href="/requests/{later.request_id}?lang=en"' in english


async def test_the_annual_report_of_every_unit_against_30_november(client, accounts, database, settings):
    """Every unit, one click from the overview: before the step opens (1 October) nobody is
    late or even due; once it is open, each unit's step is shown with its link."""
    overview = (await client.get("/?year=2096", headers=accounts.as_viewer)).text
    assert 'href="/reports/annual/2096/units"' in overview
    empty = (await client.get("/reports/annual/2096/units", headers=accounts.as_viewer)).text
    report = empty[empty.index("Báo cáo năm 2096") :]
    report = report[: report.index("</table>")]
    units = re.findall(r"<tr><td>([^<]+)</td>", report)
    assert len(units) >= 85 and "Sở Khoa học và Công nghệ" in html.unescape(report)
    assert report.count("Chưa đến ngày mở") == len(units) and "Chưa bắt đầu" not in report
    assert "Mở ngày 01/10/2096" in report and "29/11/2096" in report  # "before 30 November": due the 29th

    opened = await open_request(
        database,
        settings,
        cycle_kind="annual",
        stage_id="annual_report",
        period="2095",
        starts_on=dt.date(2095, 1, 15),
        subject="dost",
    )
    page = (await client.get("/reports/annual/2095/units", headers=accounts.as_viewer)).text
    report = page[page.index("Báo cáo năm 2095") :]
    report = report[: report.index("</table>")]
    assert f'href="/requests/{opened.request_id}"' in report
    assert "Đang chờ phê duyệt" in report
    assert report.count("Chưa bắt đầu") == len(units) - 1


async def test_a_cycles_stages_have_progress_bars_and_its_prefect_run_a_link(
    client, accounts, database, settings, monkeypatch
):
    monkeypatch.setenv("PREFECT_UI_URL", "http://prefect.test:4200/")
    opened = await open_request(
        database, settings, cycle_kind="annual", stage_id="dic_direction", period="2097", starts_on=dt.date(2097, 1, 15)
    )
    run_id = uuid.uuid4()
    async with database.transaction() as session:
        await session.execute(
            update(ApprovalRequest).where(ApprovalRequest.id == opened.request_id).values(waiter_ref=str(run_id))
        )
    page = (await client.get("/?year=2097", headers=accounts.as_viewer)).text
    assert f'href="http://prefect.test:4200/runs/flow-run/{run_id}"' in page
    assert 'role="progressbar"' in page and "Năm 2097" in page
    assert "Năm 2097" not in (await client.get("/?year=2096", headers=accounts.as_viewer)).text  # a year at a time

    monkeypatch.delenv("PREFECT_UI_URL")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4999/api")
    page = (await client.get("/?year=2097", headers=accounts.as_viewer)).text
    assert f'href="http://127.0.0.1:4999/runs/flow-run/{run_id}"' in page


async def test_a_requests_timeline(client, accounts, database, settings):
    opened = await open_request(database, settings, days_late=2)
    reminded = await client.post(f"/api/v1/requests/{opened.request_id}/remind", headers=accounts.as_coordinator)
    assert reminded.status_code == 200
    page = await client.get(f"/requests/{opened.request_id}", headers=accounts.as_viewer)
    assert page.status_code == 200
    text = page.text
    assert text.index("Trình phê duyệt") < text.index("Gửi nhắc việc")
    assert f"api:{accounts.coordinator_name}" in text and "Quá hạn" in text and "trễ 2 ngày" in text
    english = (await client.get(f"/requests/{opened.request_id}?lang=en", headers=accounts.as_viewer)).text
    assert "Reminder sent" in english and "Timeline" in english
    missing = await client.get(f"/requests/{uuid.uuid4()}", headers=accounts.as_viewer)
    assert missing.status_code == 404


async def test_the_link_pages_and_the_inbox_need_no_login(client):
    assert (await client.get("/mail")).status_code == 200
    bad_link = await client.get("/a/" + "A" * 43)
    assert bad_link.status_code == 404 and "Liên kết không còn hiệu lực" in bad_link.text
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_the_annual_report_shows_who_has_not_submitted_yet(client, accounts, database, settings):
    from approvals.db import utcnow
    from approvals.plan import load_plan
    from approvals.routing import steps
    from approvals.routing.submissions import open_submission
    from approvals.tokens import derive_token

    plan = load_plan(settings.plan_file)
    tokens = {}
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(session, kind="annual", period="2083", starts_on=dt.date(2083, 1, 15))
        for unit in ("dof", "provincial_web_portal"):
            opened = await open_submission(
                session,
                plan=plan,
                secret=settings.link_secret_bytes(),
                cycle=cycle,
                stage_id="annual_report",
                subject=unit,
                waiter_ref=None,
                now=utcnow(),
                link_ttl=dt.timedelta(days=30),
            )
            tokens[unit] = derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)
    sent = await client.post(f"/s/{tokens['provincial_web_portal']}", data={"text": "Báo cáo năm của Cổng"})
    assert sent.status_code == 200

    page = (await client.get("/reports/annual/2083/units", headers=accounts.as_viewer)).text
    report = html.unescape(page[page.index("Báo cáo năm 2083") :])
    report = report[: report.index("</table>")]
    rows = dict(re.findall(r"<tr><td>([^<]+)</td>.*?<span[^>]*>([^<]+)</span>", report, re.S))
    assert rows["Sở Tài chính"] == "Chưa nộp"
    assert rows["Cổng thông tin điện tử tỉnh"] == "Đang chờ phê duyệt"


async def test_the_annual_report_card_links_the_draft_consolidated_report(client, accounts):
    page = (await client.get("/?year=2094", headers=accounts.as_viewer)).text
    assert 'href="/reports/annual/2094?format=docx"' in page and 'href="/reports/annual/2094?format=pdf"' in page
    anonymous = await client.get("/reports/annual/2094?format=pdf")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
    await _login(client, accounts.coordinator)
    pdf = await client.get("/reports/annual/2094?format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert 'filename="bao-cao-tong-hop-du-thao-2094.pdf"' in pdf.headers["content-disposition"]
    docx = await client.get("/reports/annual/2094?format=docx")
    assert docx.status_code == 200 and docx.content.startswith(b"PK")  # a DOCX is a zip
    assert (await client.get("/reports/annual/2094?format=odt")).status_code == 404


async def test_the_overview_shows_each_phone_channel_and_names_the_failing_one(client, accounts, database):
    prefix = f"dash-{uuid.uuid4().hex}"
    now = utcnow()

    def row(n: int, channel: str, status: str, code: str | None, delivery: str | None = None) -> ChannelOutboxMessage:
        return ChannelOutboxMessage(
            delivery=delivery,
            idempotency_key=f"{prefix}:{n}@{channel}",
            email_key=f"{prefix}:{n}",
            kind="approval_request",
            official_id="dost_director",
            channel=channel,
            recipient="+84912345678",
            params={},
            fallbacks=[],
            status=status,
            attempts=1,
            error_code=code,
            last_error=f"ZNS error {code}: Template not approved" if code else None,
            attempted_at=now,
        )

    async with database.transaction() as session:
        sms = [row(3, "sms", "sent", None), row(4, "sms", "sent", None, delivery="delivered")]
        session.add_all([row(n, "zalo", "failed", "-131") for n in range(3)] + sms)
    try:
        page = (await client.get("/", headers=accounts.as_viewer)).text
        english = (await client.get("/?lang=en", headers=accounts.as_viewer)).text
    finally:
        async with database.transaction() as session:
            await session.execute(delete(ChannelOutboxMessage).where(ChannelOutboxMessage.email_key.like(f"{prefix}%")))
    card = page[page.index('id="channels"') :]
    assert "Tin nhắn Zalo và SMS" in card and "Đang lỗi: 3 tin lỗi trong 1 giờ qua, mã -131" in card
    assert "ZNS error -131: Template not approved" in card
    assert "Đã đến máy" in card  # sent is the provider taking it; delivered, the phone receiving it
    assert re.search(r"<td>SMS</td>\s*<td class=\"num\">2</td><td class=\"num\">1</td>", card), card
    assert "Failing: 3 failures in the last hour, code -131" in english
