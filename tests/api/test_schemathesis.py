"""Schemathesis over the OpenAPI schema of /api/v1, against a running `kehoach web` on the
sandbox database, with a coordinator's token and real ids to act on (seeded requests,
cycles, assignments, a delegation): 0 server errors, 0 responses that break their
documented schema. Bounded: 25 examples per operation, one worker, a fixed seed."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from approvals.config import Settings
from approvals.db import Database, utcnow
from approvals.models import AuditEvent
from approvals.people import delegations
from approvals.plan import load_plan
from service.prefect_server import free_port, stop_process
from tests.api.conftest import Accounts, make_accounts, open_request
from tests.support import local_http

BIN = Path(sys.executable).parent
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHECKS = "not_a_server_error,response_schema_conformance"
SEED = 20261128


@pytest.fixture(scope="module")
def live_api(sandbox, link_secret, tmp_path_factory):
    """`kehoach web` as ops run it, on the sandbox database (Prefect unreachable: nothing waits on a run)."""
    workdir = tmp_path_factory.mktemp(f"api-web-{sandbox.backend}")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEHOACH_", "PREFECT_"))}
    env.update(
        {
            "KEHOACH_DATABASE_URL": sandbox.url,
            "KEHOACH_LINK_SECRET": link_secret,
            "KEHOACH_DATA_DIR": str(workdir),
            "KEHOACH_WEB_PORT": str(port),
            "KEHOACH_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "PREFECT_HOME": str(workdir / "prefect"),
            "PREFECT_API_URL": "http://127.0.0.1:9/api",
            # No reconciler on the shared sandbox: it would park the wakes other tests left there
            # (and tell coordinators by email), whatever order the tests run in.
            "KEHOACH_RECONCILE": "false",
        }
    )
    log = open(workdir / "web.log", "ab")
    process = subprocess.Popen(
        [str(BIN / "kehoach"), "web"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=workdir,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(base):
            assert time.monotonic() < deadline, (workdir / "web.log").read_text()
            time.sleep(0.3)
        yield base, workdir
    finally:
        stop_process(process)
        log.close()


def _healthy(base: str) -> bool:
    try:
        return local_http.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _seed(sandbox, link_secret) -> tuple[Accounts, dict[str, list[str]]]:
    """A coordinator's token, and ids that exist, so the actions get past 404."""
    settings = Settings(
        database_url=sandbox.url, link_secret=link_secret, event_cycle_deployment="", problem_cycle_deployment=""
    )  # no Prefect here

    async def run():
        db = Database(sandbox.url)
        try:
            accounts = await make_accounts(db)
            opened = [
                await open_request(db, settings, cycle_kind=kind, stage_id=stage, days_late=late)
                for kind, stage, late in [
                    ("problem_escalation", "ppc_resolution", 0),
                    ("problem_escalation", "ppc_resolution", 9),
                    ("annual", "dic_direction", 0),
                    ("annual", "dic_direction", 30),
                ]
            ]
            async with db.transaction() as session:
                delegation = await delegations.create_delegation(
                    session,
                    plan=load_plan(settings.plan_file),
                    delegator="ppc_chair",
                    delegate="ppc_vice_chair",
                    role=None,
                    valid_from=dt.date(2099, 1, 1),
                    valid_to=dt.date(2099, 1, 9),
                    reason="schemathesis",
                    by="test",
                    now=utcnow(),
                )
            return accounts, {
                "requests": [str(o.request_id) for o in opened],
                "cycles": [str(o.cycle_id) for o in opened],
                "assignments": [str(a) for o in opened for a in o.assignments.values()],
                "delegations": [str(delegation.id)],
                "officials": ["ppc_chair", "ppc_vice_chair", "dost_director", "dost_coordinator", "dof_director"],
            }
        finally:
            await db.dispose()

    return asyncio.run(run())


def _config(ids: dict[str, list[str]]) -> str:
    lines = []
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", "values = [" + ", ".join(f'"{v}"' for v in values) + "]", ""]
    lines += [
        "[parameters]",
        '"path.request_id" = { dictionary = "requests", probability = 0.7 }',
        '"path.cycle_id" = { dictionary = "cycles", probability = 0.7 }',
        '"path.assignment_id" = { dictionary = "assignments", probability = 0.7 }',
        '"path.delegation_id" = { dictionary = "delegations", probability = 0.7 }',
        '"body.request_ids[*]" = { dictionary = "requests", probability = 0.7 }',
        '"body.to_official" = { dictionary = "officials", probability = 0.7 }',
        '"body.delegator" = { dictionary = "officials", probability = 0.7 }',
        '"body.delegate" = { dictionary = "officials", probability = 0.7 }',
    ]
    # This harness has no Prefect on purpose: restarting a cycle only queues the restart, so
    # no operation may answer 503 (not a server error) any more.
    return "\n".join(lines) + "\n"


def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_api, sandbox, link_secret):
    base, workdir = live_api
    accounts, ids = _seed(sandbox, link_secret)
    config = workdir / "schemathesis.toml"
    config.write_text(_config(ids))
    started = time.monotonic()
    result = subprocess.run(
        [
            str(BIN / "st"),
            "--config-file",
            str(config),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {accounts.coordinator}",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=workdir,
    )
    output = result.stdout + result.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"schemathesis-{sandbox.backend}.txt").write_text(output)
    web_log = (workdir / "web.log").read_text()
    assert result.returncode == 0, output[-8000:] + "\n--- web log ---\n" + web_log[-4000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert cases and cases.group(1) == cases.group(2), output[-3000:]
    assert "Tested: 17" in output or re.search(r"Tested: (\d+)", output).group(1) == re.search(
        r"Selected: (\d+)/", output
    ).group(1)
    assert "Traceback" not in web_log
    with sandbox.engine.connect() as conn:  # the run got past validation and 404s to the actions themselves
        done = dict(
            conn.execute(
                select(AuditEvent.action, func.count())
                .where(AuditEvent.actor == f"api:{accounts.coordinator_name}")
                .group_by(AuditEvent.action)
            ).all()
        )
    assert "request.reminded" in done and len(done) >= 4, done
    print(
        f"\nschemathesis ({sandbox.backend}): {cases.group(0)} in {time.monotonic() - started:.0f} s; "
        f"actions done: {done}"
    )
