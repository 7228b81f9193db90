"""What a cycle's step costs on Prefect, next to bare Prefect tasks, in the same run.

    python bench/flows.py [--steps 50] [--rounds 3] [--postgres URL]

A real Prefect server (`prefect server start`, in a temporary PREFECT_HOME) and a freshly
migrated database are started; then a process of its own runs, round after round, two flows
of `--steps` task runs each, one after the other:

  bare Prefect   a flow whose tasks do nothing (Prefect's own cost of a task run: its state
                 changes on the server, its result persisted)
  kehoach        the same flow shape with the cycles' `open-stage` task: each opens stage E
                 (the PPC resolves a problem) of a cycle of its own: the request and its
                 approver's assignment (the Vice-Chair in charge; until 1 December 2026 the
                 Chair was asked too), the audit rows and the email with its calendar file, in
                 one transaction

Each kehoach round is checked: exactly one request and one assignment per step. Ratios
are taken against the bare flow of the same round; the medians over the rounds are printed.
Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Database, add_prefect_template, median  # noqa: E402

# ------------------------------------------------------------------------ the flows (child process)


def _child(steps: int, rounds: int) -> None:
    import asyncio
    import datetime as dt

    from prefect import flow, task
    from sqlalchemy import func, select

    from approvals.config import get_settings
    from approvals.db import Database as Db
    from approvals.models import ApprovalRequest, Assignment, Cycle
    from flows.stages import open_stage
    from notifications.models import OutboxMessage

    @task(name="bare-step")
    async def bare_step(index: int) -> list[str]:
        return [str(index)]

    @flow(name="bench-bare")
    async def bare(count: int) -> None:
        for index in range(count):
            await bare_step(index)

    @flow(name="bench-kehoach")
    async def kehoach(count: int, tag: str) -> None:
        for index in range(count):
            await open_stage(
                cycle_kind="problem_escalation",
                period=f"bench-{tag}-{index}",
                starts_on=dt.date(2031, 1, 1),
                stage_id="ppc_resolution",
                waiter_ref=str(uuid.uuid4()),
            )

    async def counts(tag: str) -> tuple[int, int, int]:
        """(requests, assignments) opened for the round's cycles, and every email queued so far."""
        db = Db(get_settings().effective_database_url)
        try:
            async with db.reads() as session:
                cycles = select(Cycle.id).where(Cycle.period.startswith(f"bench-{tag}-"))
                requests = select(ApprovalRequest.id).where(ApprovalRequest.cycle_id.in_(cycles))
                return (
                    (await session.execute(select(func.count()).where(ApprovalRequest.id.in_(requests)))).scalar(),
                    (await session.execute(select(func.count()).where(Assignment.request_id.in_(requests)))).scalar(),
                    (await session.execute(select(func.count()).select_from(OutboxMessage))).scalar(),
                )
        finally:
            await db.dispose()

    async def main() -> None:
        await bare(2)  # the flows registered and everything imported before any clock starts
        await kehoach(1, "warm-up")
        for number in range(rounds):
            started = time.perf_counter()
            await bare(steps)
            bare_rate = steps / (time.perf_counter() - started)
            tag = f"r{number}-{uuid.uuid4().hex[:6]}"
            emails_before = (await counts(tag))[2]
            started = time.perf_counter()
            await kehoach(steps, tag)
            kehoach_rate = steps / (time.perf_counter() - started)
            requests, assignments, emails = await counts(tag)
            print(
                json.dumps(
                    {
                        "bare": bare_rate,
                        "kehoach": kehoach_rate,
                        "requests": requests,
                        "assignments": assignments,
                        "emails": emails - emails_before,
                    }
                ),
                flush=True,
            )

    asyncio.run(main())


# ------------------------------------------------------------------------ the run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="task runs per flow and round (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians printed (default 3)")
    add_prefect_template(parser)
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.steps, args.rounds)
        return

    from service.prefect_server import LocalPrefectServer, prefect_env

    folder = Path(tempfile.mkdtemp(prefix="kehoach-bench-flows-"))
    database = Database(args.postgres, folder)
    server = LocalPrefectServer(folder / "prefect", template=args.prefect_template)
    results = []
    try:
        print("starting a Prefect server ...", flush=True)
        server.start()
        env = prefect_env(server.home, server.api_url)
        env.update(
            KEHOACH_DATABASE_URL=database.url,
            KEHOACH_LINK_SECRET=secrets.token_urlsafe(48),
            KEHOACH_DATA_DIR=str(folder / "data"),
            PREFECT_LOGGING_LEVEL="ERROR",
        )
        print(
            f"Prefect server at {server.api_url}; database: {'PostgreSQL' if args.postgres else 'SQLite file'}; "
            f"{args.rounds} round(s) of {args.steps} steps",
            flush=True,
        )
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", "--steps", str(args.steps), "--rounds", str(args.rounds)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for line in child.stdout:
            if not line.startswith("{"):
                continue
            result = json.loads(line)
            print(
                f"  round {len(results) + 1}: bare {result['bare']:.1f}, kehoach {result['kehoach']:.1f} steps/s; "
                f"{result['emails'] / args.steps:.1f} emails queued per step",
                flush=True,
            )
            if (result["requests"], result["assignments"]) != (args.steps, args.steps):  # stage E: one approver
                raise SystemExit(
                    f"kehoach opened {result['requests']} requests with {result['assignments']} "
                    f"assignments for {args.steps} steps"
                )
            results.append(result)
        if child.wait() != 0 or len(results) != args.rounds:
            raise SystemExit(f"the flows process failed (exit code {child.returncode})")
    finally:
        server.stop()
        database.drop()
        shutil.rmtree(folder, ignore_errors=True)

    ratios = [r["kehoach"] / r["bare"] for r in results]
    print()
    print(f"  median of {len(results)} round(s); ratio against bare Prefect in the same round (min-max)")
    print(f"  {'':52} {'steps/s':>8} {'ms/step':>8} {'x bare':>17}")
    for key, name in (
        ("bare", "bare Prefect: a task that does nothing"),
        ("kehoach", "kehoach: open-stage (a request, 2 approvers, emails)"),
    ):
        rate = median([r[key] for r in results])
        values = [r[key] / r["bare"] for r in results]
        spread = f"{median(values):5.2f} ({min(values):.2f}-{max(values):.2f})"
        print(f"  {name:52} {rate:8.1f} {1000 / rate:8.1f} {spread:>17}")
    print()
    print(f"  every kehoach step opened one request with two approvers (median ratio {median(ratios):.2f}).")


if __name__ == "__main__":
    main()
