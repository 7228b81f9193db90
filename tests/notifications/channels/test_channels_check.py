"""`kehoach channels check`, in process: it passes on the shipped templates, and fails on a kind
with no approved ZNS template id once Zalo is on, or on an SMS past two segments."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from approvals.config import get_settings
from notifications.channels.base import KINDS
from service.cli import app

ALL_TEMPLATES = {kind: str(231000 + n) for n, kind in enumerate(KINDS)}


def check(tmp_path, *args: str, **env: str) -> tuple[int, str]:
    get_settings.cache_clear()  # a process reads its settings once; each run here has its own
    try:
        result = CliRunner().invoke(
            app, ["channels", "check", *args], env={"KEHOACH_DATA_DIR": str(tmp_path), "COLUMNS": "200", **env}
        )
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def test_the_shipped_templates_pass_with_every_id(tmp_path):
    code, output = check(
        tmp_path,
        "--lang",
        "en",
        KEHOACH_ZALO_ENABLED="true",
        KEHOACH_ZNS_TEMPLATES=json.dumps(ALL_TEMPLATES),
        KEHOACH_PUBLIC_BASE_URL="https://kehoach.ubnd.langson.gov.vn",
    )
    assert code == 0, output
    for kind, template_id in ALL_TEMPLATES.items():
        assert f"\n{kind} (" in output and f"ZNS template: {template_id}" in output
    assert "ten_can_bo = name" in output and "Button “Xem và duyệt”: duong_dan" in output
    assert "https://kehoach.ubnd.langson.gov.vn/l/xxxxxxxxxxxx" in output
    assert "Every Zalo and SMS template is in order." in output


def test_zalo_off_needs_no_template_ids(tmp_path):
    code, output = check(tmp_path)
    assert code == 0, output
    assert "Zalo đang tắt" in output and "CHƯA CÓ MẪU ĐƯỢC DUYỆT" in output


def test_a_kind_with_no_template_id_fails_when_zalo_is_on(tmp_path):
    missing = {kind: value for kind, value in ALL_TEMPLATES.items() if kind != "reminder"}
    code, output = check(
        tmp_path, "--lang", "en", KEHOACH_ZALO_ENABLED="true", KEHOACH_ZNS_TEMPLATES=json.dumps(missing)
    )
    assert code == 1
    reminder = output.split("\nreminder (", 1)[1]
    assert reminder.split("\n")[1].endswith("NO APPROVED TEMPLATE (KEHOACH_ZNS_TEMPLATES)")
    assert "1 problem(s) to fix." in output


def test_an_unknown_kind_in_the_settings_fails(tmp_path):
    code, output = check(
        tmp_path,
        "--lang",
        "en",
        KEHOACH_ZNS_TEMPLATES=json.dumps({**ALL_TEMPLATES, "aproval_request": "1"}),
    )
    assert code == 1 and "names kinds that do not exist: aproval_request" in output


def test_an_sms_past_two_segments_fails(tmp_path):
    code, output = check(tmp_path, "--lang", "en", KEHOACH_PUBLIC_BASE_URL="https://" + "k" * 40 + ".langson.gov.vn")
    assert code == 1, output
    assert "SMS: 3 segment(s)" in output and "<--" in output


def test_zalo_token_stores_the_tokens_from_the_environment(tmp_path, private_database):
    """`kehoach channels zalo-token` after the OA is authorised: the tokens stored, a failure cleared."""
    import asyncio

    from approvals.db import Database
    from notifications.models import ZaloToken

    env = {
        "KEHOACH_DATABASE_URL": private_database.url,
        "KEHOACH_DATA_DIR": str(tmp_path),
        "KEHOACH_ZALO_APP_ID": "app-cli",
        "KEHOACH_ZALO_ACCESS_TOKEN": "at-from-the-oa",
        "KEHOACH_ZALO_REFRESH_TOKEN": "rt-from-the-oa",
    }

    def run() -> str:
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(app, ["channels", "zalo-token"], env=env)
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        return result.output

    async def stored() -> tuple[str, str, int]:
        db = Database(private_database.url)
        try:
            async with db.reads() as session:
                row = await session.get(ZaloToken, "app-cli")
                assert row is not None
                return row.access_token, row.refresh_token, row.generation
        finally:
            await db.dispose()

    assert "app-cli stored" in run()
    assert asyncio.run(stored()) == ("at-from-the-oa", "rt-from-the-oa", 1)
    env["KEHOACH_ZALO_REFRESH_TOKEN"] = "rt-again"
    run()
    assert asyncio.run(stored()) == ("at-from-the-oa", "rt-again", 2)
