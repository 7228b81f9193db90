"""What the benchmarks share: a fresh database, where the CPU went, and for the benches of the
decision (web.py, replies.py): open requests to decide, `kehoach web` in a child process, a
keep-alive HTTP load, and the decisions recorded."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import statistics
import time
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import NamedTuple

HOST = "127.0.0.1"
DONE = "Đã ghi nhận".encode()  # on the answer to a decision (and on the receipt of a reply)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """The value at share `q` of `values` in order (nearest rank); NaN for none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Database:
    """A migrated, empty database for one run: a SQLite file or a PostgreSQL schema."""

    def __init__(self, postgres: str | None, folder: Path):
        from service.migrate import upgrade

        self.postgres, self.schema = postgres, None
        if postgres:
            import psycopg
            from sqlalchemy.engine import make_url

            self.schema = f"kh_bench_{uuid.uuid4().hex[:10]}"
            self.conninfo = make_url(postgres).set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(self.conninfo, autocommit=True) as connection:
                connection.execute(f'CREATE SCHEMA "{self.schema}"')
            self.url = (
                make_url(postgres)
                .update_query_dict({"options": f"-csearch_path={self.schema}"})
                .render_as_string(hide_password=False)
            )
        else:
            self.url = f"sqlite:///{folder / 'bench.db'}"
        upgrade(self.url)

    def connect(self):
        """A DB-API connection in autocommit, outside the app's code (a bench's poll and checks)."""
        if self.schema:
            import psycopg

            return psycopg.connect(self.conninfo, autocommit=True, options=f"-csearch_path={self.schema}")
        import sqlite3

        return sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)

    def drop(self) -> None:
        if self.schema:
            import psycopg

            with psycopg.connect(self.conninfo, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA "{self.schema}" CASCADE')


def cpu_seconds(pid: int | str, *, children: bool = False) -> float:
    """User + system CPU of one process (Linux /proc); with `children`, also that of the children
    it has waited for (a worker's finished flow-run processes); 0 where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11 : 15 if children else 13]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def postgres_seconds() -> float:
    """CPU of every PostgreSQL process on this machine (a remote server reads as 0)."""
    total = 0.0
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/comm") as comm:
                    if comm.read().strip() != "postgres":
                        continue
            except OSError:
                continue
            total += cpu_seconds(entry.name)
    return total


class CpuMeter:
    """Share of one core (in %) used between `start()` and `stop()` by each named process,
    by this one ("sender") and by PostgreSQL on this machine; `stop()` adds CPU seconds that
    other processes reported themselves (one that ended before `stop()`)."""

    def __init__(self, **processes: int):
        self.processes = processes

    def _read(self) -> dict[str, float]:
        reading = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        reading.update(sender=time.process_time(), postgres=postgres_seconds(), wall=time.perf_counter())
        return reading

    def start(self) -> None:
        self.before = self._read()

    def stop(self, **reported_seconds: float) -> dict[str, float]:
        after = self._read()
        wall = after["wall"] - self.before["wall"]
        shares = {name: 100 * (after[name] - self.before[name]) / wall for name in after if name != "wall"}
        shares.update({name: 100 * seconds / wall for name, seconds in reported_seconds.items()})
        return shares


def add_prefect_template(parser) -> None:
    """The option of the benches that start a Prefect server on SQLite."""
    parser.add_argument(
        "--prefect-template",
        metavar="FILE",
        type=Path,
        help="a migrated Prefect SQLite database to start the server from (as `prefect server "
        "database upgrade` leaves it): saves its migrations; the tests pass one",
    )


# ------------------------------------------------------------------------ `kehoach web` (a child process)


def serve_kehoach(kind: str, port: int, url: str, secret: str, folder: str) -> None:
    """`kehoach web`'s app (create_app) under uvicorn, one worker, no access log."""
    import uvicorn

    from approvals.config import Settings
    from service.app import create_app

    app = create_app(
        Settings(
            database_url=url,
            link_secret=secret,
            data_dir=Path(folder),
            public_base_url=f"http://{HOST}:{port}",
            event_cycle_deployment="",
            problem_cycle_deployment="",
        )
    )
    uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning", access_log=False)).run()


class Server:
    """An app served in a spawned child process: `serve(kind, port, url, secret, folder)`, by
    default `kehoach web`'s."""

    def __init__(self, kind: str, url: str, secret: str, folder: Path, serve=serve_kehoach):
        from service.prefect_server import free_port

        self.kind, self.port = kind, free_port()
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(target=serve, args=(kind, self.port, url, secret, str(folder)), daemon=True)

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self.process.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                if not self.process.is_alive():
                    break
                time.sleep(0.1)
        raise SystemExit(f"the {self.kind} server did not start")

    def stop(self) -> None:
        if self.process.pid is None:
            return  # never started
        self.process.terminate()
        self.process.join(10)


# ------------------------------------------------------------------------ the HTTP load (a child process)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split(b" ", 2)[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = b""
    while size := int((await reader.readline()).strip(), 16):
        body += await reader.readexactly(size)
        await reader.readline()
    await reader.readline()
    return status, body


async def _load(
    port: int, work: list[tuple[str, str, bytes, str]], concurrency: int, expect: bytes, rate: float | None = None
):
    """Send `work` on `concurrency` keep-alive connections, each sending its next request when its
    answer came (closed loop); with `rate`, request i is sent no sooner than i/rate seconds after
    the start (open loop: the load a server gets from people, not from a loop waiting on it), and
    its latency counts from that planned moment, so a backlog shows in the percentiles."""
    queue = deque(enumerate(work))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    unexpected = 0
    started = time.perf_counter()

    async def connection() -> None:
        nonlocal unexpected
        reader, writer = await asyncio.open_connection(HOST, port)
        while queue:
            index, (method, path, body, origin) = queue.popleft()
            planned = started + index / rate if rate else None
            if planned is not None and (wait := planned - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            if body:
                head += (
                    f"Origin: {origin}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\n"
                )
            sent = time.perf_counter()
            writer.write(head.encode() + b"\r\n" + body)
            status, answer = await _read_answer(reader)
            latencies.append(time.perf_counter() - (planned if planned is not None else sent))
            statuses[status] += 1
            unexpected += expect not in answer
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return time.perf_counter() - started, dict(statuses), sorted(latencies), unexpected


def _load_main(port, work, concurrency, expect, rate, answer) -> None:
    answer.send(asyncio.run(_load(port, work, concurrency, expect, rate)))


def load(port: int, work: list, concurrency: int, expect: bytes, rate: float | None = None):
    """Runs in a process of its own (spawned before its clock starts); returns (seconds, statuses,
    latencies, unexpected)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_load_main, args=(port, work, concurrency, expect, rate, child))
    process.start()
    result = parent.recv()
    process.join()
    return result


# ------------------------------------------------------------------------ the data


class Link(NamedTuple):
    """One open request's first assignment: its link token, its reply token, who decides it."""

    token: str
    reply_token: str
    approver_email: str
    assignment_id: uuid.UUID
    request_id: uuid.UUID


async def open_steps(url: str, secret: str, count: int, tag: str) -> list[Link]:
    """`count` open requests of stage E (the PPC resolves a problem), one cycle each; the
    first approver's assignment of each, with its link and its reply address's token."""
    import datetime as dt

    from approvals.config import Settings
    from approvals.db import Database as Db
    from approvals.db import utcnow
    from approvals.plan import load_plan
    from approvals.routing import steps
    from approvals.tokens import derive_reply_token, derive_token

    settings = Settings(database_url=url, link_secret=secret)
    plan, key = load_plan(settings.plan_file), settings.link_secret_bytes()
    emails = {official.id: str(official.email) for official in plan.officials}
    db = Db(url)
    links = []
    try:
        now = utcnow()
        for start in range(0, count, 100):
            async with db.transaction() as session:
                for index in range(start, min(count, start + 100)):
                    cycle = await steps.get_or_create_cycle(
                        session, kind="problem_escalation", period=f"bench-{tag}-{index}", starts_on=now.date()
                    )
                    opened = await steps.open_request(
                        session,
                        plan=plan,
                        secret=key,
                        cycle=cycle,
                        stage_id="ppc_resolution",
                        subject="",
                        waiter_ref=None,
                        link_ttl=dt.timedelta(days=30),
                        now=now,
                    )
                    first = opened.new_assignments[0].assignment
                    links.append(
                        Link(
                            derive_token(key, first.id, first.token_generation),
                            derive_reply_token(key, first.id, first.token_generation),
                            emails[first.official_id],
                            first.id,
                            first.request_id,
                        )
                    )
    finally:
        await db.dispose()
    return links


async def open_links(url: str, secret: str, count: int, tag: str) -> list[str]:
    """The link tokens of `count` open requests of stage E (`open_steps`)."""
    return [link.token for link in await open_steps(url, secret, count, tag)]


async def decisions(url: str) -> Counter:
    """How many decisions each assignment has."""
    from sqlalchemy import func, select

    from approvals.db import Database as Db
    from approvals.models import Decision

    db = Db(url)
    try:
        async with db.sessions() as session:
            rows = (
                await session.execute(select(Decision.assignment_id, func.count()).group_by(Decision.assignment_id))
            ).all()
    finally:
        await db.dispose()
    return Counter(dict(rows))
