"""What the benchmarks share: a fresh database, and where the CPU went."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from pathlib import Path


def median(values: list[float]) -> float:
    return statistics.median(values)


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
