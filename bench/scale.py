"""The annual report at the province's size and beyond, next to a bare-Prefect fan-out, in one run.

    python bench/scale.py [--postgres URL] [--sizes real,200,500] [--changes 0.05] [--baseline 50]

A real Prefect server (on PostgreSQL with --postgres, in a database of its own, dropped after;
else on SQLite) and the kehoach processes as ops run them (`kehoach worker`, `web`, `dispatch`,
on a fresh PostgreSQL schema or SQLite file) carry an annual cycle, driven the way officials
drive it: every step from the link in the email they received, over HTTP, `--concurrency`
officials at a time. For each size:

  real   the shipped plan: every unit in force today (about 90: the departments, the press,
         the mass organisations, the 65 communes and wards)
  N      the shipped plan with synthetic communes added until stage 7 has N branches

stages 1-5 are walked through, then the annual report: every unit submits, the lead agency's
director decides each report, `--changes` of them are sent back and come again. What is
measured is stage 7, from the first submission to the chain going on to stage 8:

  wall                 seconds
  Prefect CPU/branch   the Prefect server's CPU seconds per branch
  own CPU/branch       kehoach's processes (worker and the flow runs it started, web, dispatch)
  effect p50/p99       from a decision's answer to its effect reaching the SMTP server: the
                       submitter's outcome or resubmission email; the last decision's effect is
                       the chain finishing (the coordinators' digest)
  wakes                how often the cycle's run was resumed (stages, not branches)

The baseline, in the same run: bare Prefect doing the same fan-out, `--baseline` flow runs of
a deployment that each suspend once and are resumed through the API (`serve`, at most
`--concurrency` at once), timed from their creation to all completed; its effect is a resume
to the run's completion. Ratios compare the CPU per branch (Prefect server and the runs'
own processes). Every kehoach size is checked: each unit asked once, the stage done, the chain
finished, no Message-ID twice. Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Database, add_prefect_template, cpu_seconds, percentile  # noqa: E402
from bench.scale_baseline import run_baseline  # noqa: E402
from bench.scale_officials import (  # noqa: E402
    ASK,
    DIRECTOR,
    RESUBMIT,
    SUBMIT,
    Mailbox,
    Size,
    approve,
    make_plan,
    submit,
    walk_to_the_budget_decision,
)

KEHOACH = str(Path(sys.executable).parent / "kehoach")


# ---------------------------------------------------------------------- one size


def run_size(
    size: Size,
    year: int,
    *,
    env: dict,
    server_pid: int,
    database_url: str,
    mailbox: Mailbox,
    changes: float,
    concurrency: int,
    workdir: Path,
) -> dict:
    import httpx
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from sqlalchemy import create_engine, text

    from approvals.db import sync_url
    from service.prefect_server import free_port, stop_process

    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}"
    env = {
        **env,
        "KEHOACH_PLAN_FILE": str(size.plan_file),
        "KEHOACH_WEB_PORT": str(web_port),
        "KEHOACH_PUBLIC_BASE_URL": base,
    }
    processes = {}
    for role in ("worker", "web", "dispatch"):
        log = open(workdir / f"{size.name}-{role}.log", "ab")
        processes[role] = subprocess.Popen(
            [KEHOACH, role], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir
        )
    engine = create_engine(sync_url(database_url))
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the web service did not start; see {workdir}")
            time.sleep(0.3)
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            from service.cycles import start_annual_cycle

            asyncio.run(start_annual_cycle(year, "annual-cycle/annual-cycle", wait=120))
        client = httpx.Client(timeout=60)

        walk_to_the_budget_decision(client, mailbox, year)  # stages 1-5 (not measured)

        # The last decision before the report: from here on is measured.
        meter = {"prefect": server_pid, **{role: p.pid for role, p in processes.items()}}
        before = {name: cpu_seconds(pid, children=True) for name, pid in meter.items()}
        started = time.monotonic()
        approve(client, mailbox.link("giamdoc.stc@lang-son.example", ASK, "5. ", year))
        units = size.units
        returned = set(list(units)[:: max(1, round(1 / changes))] if changes > 0 else [])
        effects: list[float] = []
        lock = threading.Lock()

        def submit_report(unit: str) -> None:
            with httpx.Client(timeout=60) as own:
                submit(own, mailbox.link(units[unit], SUBMIT, "7. ", year), text=f"Báo cáo {year} ({unit})")

        decided_at: list[float] = []

        def decide(link: str, first_round: bool) -> str:
            with httpx.Client(timeout=60) as own:
                page = own.get(link).text
                (unit,) = [u for u in units if f"({u})" in page]
                back = first_round and unit in returned
                data = (
                    {"outcome": "request_changes", "comment": "Bổ sung số liệu"}
                    if back
                    else {"outcome": "approve", "comment": ""}
                )
                posted = time.monotonic()
                answered = own.post(link, data=data)
                done = time.monotonic()
                if answered.status_code != 200:
                    raise SystemExit(f"a decision was refused: {answered.status_code}")
            word = RESUBMIT if back else "[Đã phê duyệt]"
            effect = mailbox.find(
                lambda m: (
                    units[unit] in m.to
                    and word in m.subject
                    and str(year) in m.subject
                    and "7. " in m.subject
                    and m.at >= posted
                )
            )
            with lock:
                effects.append(max(effect.at - done, 0.0))
                decided_at.append(done)
            return unit

        def resubmit(unit: str) -> None:
            with httpx.Client(timeout=60) as own:
                submit(own, mailbox.link(units[unit], RESUBMIT, "7. ", year), text=f"Báo cáo đã bổ sung ({unit})")

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(submit_report, units))
            links = [mailbox.link(DIRECTOR, ASK, "7. ", year) for _ in units]
            decided = list(pool.map(lambda link: decide(link, True), links))
            list(pool.map(resubmit, returned))
            links = [mailbox.link(DIRECTOR, ASK, "7. ", year) for _ in returned]
            list(pool.map(lambda link: decide(link, False), links))
        # The last decision settled the stage: its effect is the chain going on, the lead agency's
        # coordinator asked for the consolidated report (stage 8).
        coordinator = "dieuphoi.skhcn@lang-son.example"
        consolidate = mailbox.link(coordinator, "Submission needed", "8. ", year)
        asked_at = next(
            m.at for m in mailbox.mails if coordinator in m.to and "8. " in m.subject and str(year) in m.subject
        )
        settle_effect = asked_at - max(decided_at)
        wall = asked_at - started
        after = {name: cpu_seconds(pid, children=True) for name, pid in meter.items()}
        # Stage 8 (not measured): the coordinator submits the draft, the director approves, the chain ends.
        submit(client, consolidate, text="Đánh giá chung.")
        approve(client, mailbox.link(DIRECTOR, ASK, "8. ", year))
        mailbox.find(
            lambda m: (
                coordinator in m.to
                and str(year) in m.subject
                and ("finished" in m.subject.lower() or "Kết thúc" in m.subject)
            ),
            timeout=300,
        )

        # Checks: each unit asked once, the stage done, the chain finished, no Message-ID twice.
        asked = sorted(
            a
            for m in mailbox.mails
            if SUBMIT in m.subject and "7. " in m.subject and str(year) in m.subject
            for a in m.to
        )
        if asked != sorted(units.values()):
            raise SystemExit(f"{len(asked)} submission emails for {len(units)} units")
        ids = [m.message_id for m in mailbox.mails if str(year) in m.subject]
        if len(ids) != len(set(ids)):
            raise SystemExit("an email was sent twice")
        with engine.connect() as conn:
            cycle_id, finished = conn.execute(
                text("SELECT id, finished_at FROM cycle WHERE kind = 'annual' AND period = :p"), {"p": str(year)}
            ).one()
            stage = conn.execute(
                text("SELECT status FROM cycle_stage WHERE cycle_id = :c AND stage = 'annual_report'"), {"c": cycle_id}
            ).scalar()
            wakes = conn.execute(text("SELECT COUNT(*) FROM wake WHERE cycle_id = :c"), {"c": cycle_id}).scalar()
        if finished is None or stage != "done" or sorted(decided) != sorted(units):
            raise SystemExit(f"the chain did not finish (stage 7 {stage}, {len(decided)} of {len(units)} decided)")
        n = len(units)
        own = sum(after[r] - before[r] for r in ("worker", "web", "dispatch"))
        return {
            "size": size.name,
            "branches": n,
            "wall": wall,
            "prefect": (after["prefect"] - before["prefect"]) / n,
            "own": own / n,
            "roles": {r: (after[r] - before[r]) / n for r in ("worker", "web", "dispatch")},
            "p50": percentile(effects, 0.5),
            "p99": percentile(effects, 0.99),
            "settle": settle_effect,
            "wakes": wakes,
            "returned": len(returned),
        }
    finally:
        for process in processes.values():
            stop_process(process)
        engine.dispose()


# ---------------------------------------------------------------------- the run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_prefect_template(parser)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="e.g. postgresql://postgres@127.0.0.1:5432/test: kehoach and the Prefect server on PostgreSQL",
    )
    parser.add_argument("--sizes", default="real,200,500", help="comma-separated: real, or a number of branches")
    parser.add_argument("--changes", type=float, default=0.05, help="share of reports sent back (default 0.05)")
    parser.add_argument("--baseline", type=int, default=50, help="bare-Prefect branches (default 50; 0: none)")
    parser.add_argument("--concurrency", type=int, default=8, help="officials acting at once (default 8)")
    args = parser.parse_args(argv)

    from service.prefect_server import LocalPrefectServer, prefect_env

    folder = Path(tempfile.mkdtemp(prefix="kehoach-bench-scale-"))
    database = Database(args.postgres, folder)
    prefect_db = None
    server_env: dict[str, str] = {}
    mailbox = Mailbox()
    results = []
    server = None
    try:
        if args.postgres:
            import psycopg
            from sqlalchemy.engine import make_url

            prefect_db = f"kh_bench_prefect_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(database.conninfo, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{prefect_db}"')
            server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = (
                make_url(args.postgres)
                .set(drivername="postgresql+asyncpg", database=prefect_db)
                .render_as_string(hide_password=False)
            )
        print("starting a Prefect server ...", flush=True)
        server = LocalPrefectServer(folder / "prefect", env=server_env, template=args.prefect_template)
        server.start()
        mailbox.start()
        env = prefect_env(server.home, server.api_url)
        env.update(
            KEHOACH_DATABASE_URL=database.url,
            KEHOACH_LINK_SECRET=secrets.token_urlsafe(48),
            KEHOACH_DATA_DIR=str(folder / "data"),
            KEHOACH_SMTP_HOST="127.0.0.1",
            KEHOACH_SMTP_PORT=str(mailbox.port),
            KEHOACH_DISPATCH_INTERVAL="0.2",
            KEHOACH_RESUME_RETRY_INTERVAL="0.5",
            KEHOACH_LINK_FAILURE_LIMIT="0",
            PREFECT_RUNNER_POLL_FREQUENCY="1",
            PREFECT_LOGGING_LEVEL="ERROR",
            KEHOACH_EVENT_CYCLE_DEPLOYMENT="",
            KEHOACH_PROBLEM_CYCLE_DEPLOYMENT="",
        )
        print(
            f"Prefect server at {server.api_url} ({'PostgreSQL' if args.postgres else 'SQLite'}); kehoach on "
            f"{'PostgreSQL' if args.postgres else 'a SQLite file'}; {args.concurrency} officials at once; "
            f"{args.changes:.0%} of reports sent back",
            flush=True,
        )
        if args.baseline:
            result = run_baseline(
                args.baseline, env=env, server_pid=server.process.pid, concurrency=args.concurrency, workdir=folder
            )
            print(f"  {result['size']}: {result['wall']:.1f} s", flush=True)
            results.append(result)
        for number, name in enumerate(args.sizes.split(",")):
            size = make_plan(folder, name.strip())
            result = run_size(
                size,
                2000 + number + 1,
                env=env,
                server_pid=server.process.pid,
                database_url=database.url,
                mailbox=mailbox,
                changes=args.changes,
                concurrency=args.concurrency,
                workdir=folder,
            )
            print(
                f"  {name} ({result['branches']} branches): {result['wall']:.1f} s, {result['wakes']} wakes", flush=True
            )
            results.append(result)
    finally:
        mailbox.stop()
        if server is not None:
            server.stop()
        if prefect_db:
            import psycopg

            with psycopg.connect(database.conninfo, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)')
        database.drop()
        shutil.rmtree(folder, ignore_errors=True)

    print()
    print("  stage 7 (kehoach) or the whole fan-out (bare Prefect); CPU seconds per branch; effect in seconds")
    print(
        f"  {'':24} {'branches':>8} {'wall s':>8} {'Prefect':>8} {'own':>8} {'total':>8} {'x bare':>7} "
        f"{'x first':>7} {'p50':>6} {'p99':>6} {'wakes':>6}"
    )
    bare = next((r for r in results if r["size"].startswith("bare")), None)
    first = next((r for r in results if not r["size"].startswith("bare")), None)
    for r in results:
        total = r["prefect"] + r["own"]
        x_bare = f"{total / (bare['prefect'] + bare['own']):7.2f}" if bare and r is not bare else f"{'':>7}"
        x_first = f"{total / (first['prefect'] + first['own']):7.2f}" if first and "wakes" in r else f"{'':>7}"
        print(
            f"  {r['size']:24} {r['branches']:8d} {r['wall']:8.1f} {r['prefect']:8.3f} {r['own']:8.3f} "
            f"{total:8.3f} {x_bare} {x_first} {r['p50']:6.2f} {r['p99']:6.2f} {r.get('wakes', ''):>6}"
        )
    print()
    for r in results:
        if "roles" in r:
            print(
                f"  {r['size']}: own CPU per branch by role: "
                + ", ".join(f"{role} {seconds * 1000:.0f} ms" for role, seconds in r["roles"].items())
                + f"; the stage settled -> stage 8 asked in {r['settle']:.1f} s; {r['returned']} reports "
                "sent back and resubmitted"
            )
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
