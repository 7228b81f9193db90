"""bench/scale.py's baseline: bare Prefect doing the same fan-out, `count` flow runs of a deployment
that each suspend once and are resumed through the API, served by this file run as a script
(`serve`, at most `--concurrency` runs at once)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prefect import flow  # noqa: E402
from prefect.flow_runs import suspend_flow_run  # noqa: E402

from bench.common import cpu_seconds, percentile  # noqa: E402


@flow(name="bench-bare-branch")
def bare_branch(index: int) -> int:
    """A branch of the baseline: it waits once, suspended, and is resumed through the API."""
    suspend_flow_run(timeout=None, key="wait")
    return index


def serve_baseline(limit: int) -> None:
    from prefect import serve

    serve(bare_branch.to_deployment(name="bench-bare-branch"), limit=limit)


def run_baseline(count: int, *, env: dict, server_pid: int, concurrency: int, workdir: Path) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from service.prefect_server import stop_process

    log = open(workdir / "baseline-serve.log", "ab")
    serve = subprocess.Popen(
        [sys.executable, __file__, str(concurrency)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )

    async def drive() -> dict:
        async with get_client() as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    deployment = await client.read_deployment_by_name("bench-bare-branch/bench-bare-branch")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise SystemExit("the baseline's deployment did not appear") from None
                    await asyncio.sleep(0.5)
            before = {"prefect": cpu_seconds(server_pid, children=True), "serve": cpu_seconds(serve.pid, children=True)}
            started = time.monotonic()
            runs = [
                (await client.create_flow_run_from_deployment(deployment.id, parameters={"index": i})).id
                for i in range(count)
            ]

            async def states() -> dict:
                found = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs)), limit=len(runs)
                )
                return {run.id: run.state for run in found}

            while True:
                found = (await states()).values()
                if any(s is not None and s.is_final() for s in found):
                    raise SystemExit(f"a baseline run ended before it waited; see {workdir / 'baseline-serve.log'}")
                if len(found) == len(runs) and all(s is not None and s.is_paused() for s in found):
                    break
                await asyncio.sleep(0.5)
            resumed_at = {}
            for run_id in runs:
                await client.resume_flow_run(run_id)
                resumed_at[run_id] = time.monotonic()
            completed_at = {}
            while len(completed_at) < len(runs):
                now = time.monotonic()
                for run_id, state in (await states()).items():
                    if run_id not in completed_at and state is not None and state.is_completed():
                        completed_at[run_id] = now
                    elif state is not None and state.is_final() and not state.is_completed():
                        raise SystemExit(f"a baseline run ended {state.name}")
                await asyncio.sleep(0.2)
            wall = time.monotonic() - started
            after = {"prefect": cpu_seconds(server_pid, children=True), "serve": cpu_seconds(serve.pid, children=True)}
            latencies = [completed_at[r] - resumed_at[r] for r in runs]
            return {
                "size": f"bare Prefect, {count}",
                "branches": count,
                "wall": wall,
                "prefect": (after["prefect"] - before["prefect"]) / count,
                "own": (after["serve"] - before["serve"]) / count,
                "p50": percentile(latencies, 0.5),
                "p99": percentile(latencies, 0.99),
            }

    try:
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            return asyncio.run(drive())
    finally:
        stop_process(serve)


if __name__ == "__main__":  # run_baseline's serving process
    serve_baseline(int(sys.argv[1]))
