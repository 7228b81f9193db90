"""Where a command's CPU goes, by kind of process (tests/README.md, "Where the CPU goes"):

    .venv/bin/python -m tests.support.cpu_by_process -- .venv/bin/python -m pytest

On a 2-core machine the full suite keeps both cores busy, so its wall time is about its CPU
time over two; pytest's durations say which test waited, this says which process worked. It
runs the command, reads /proc twice a second, and on exit prints the CPU seconds of every
process that started after it, summed by kind (a Prefect server, a flow run, `kehoach web`...),
beside what the whole machine used meanwhile. A process that lives less than a sample's
interval is not seen; the difference is printed as such.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")

# The first rule whose pattern is found in a process's command line names its kind.
KINDS = (
    ("Chromium", re.compile(r"chrom")),
    ("PostgreSQL (the server's backends, initdb, private clusters)", re.compile(r"^postgres|/postgresql/|initdb")),
    ("Dovecot", re.compile(r"dovecot|^imap|^lmtp")),
    ("flow runs (python -m prefect.engine)", re.compile(r"prefect\.engine")),
    ("Prefect servers", re.compile(r"prefect server start|prefect\.server")),
    ("kehoach worker's deployments (python -m flows)", re.compile(r"-m flows$")),
    ("kehoach {0}", re.compile(r"bin/kehoach (\w+)")),
    ("bench/{0}", re.compile(r"bench/(\S+)")),
    ("pytest and its workers", re.compile(r"pytest|exec\(eval\(sys\.stdin")),
    ("pip, ruff, mypy", re.compile(r"pip install|bin/ruff|bin/mypy|-m mypy")),
)


def kind(command_line: str) -> str:
    for name, pattern in KINDS:
        found = pattern.search(command_line)
        if found:
            return name.format(*found.groups())
    return "other"


def _boot_ticks_now() -> float:
    return float(Path("/proc/uptime").read_text().split()[0]) * TICKS


def _machine_cpu_seconds() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(f) for f in fields) - int(fields[3]) - int(fields[4])  # all but idle and iowait
    return busy / TICKS


def _processes() -> dict[tuple[int, int], tuple[str, float]]:
    """(pid, start tick) -> (command line, CPU seconds so far) of every process readable now."""
    seen = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone between the listing and the read
        fields = stat[stat.rindex(")") + 2 :].split()
        seen[(int(entry), int(fields[19]))] = (command.strip(), (int(fields[11]) + int(fields[12])) / TICKS)
    return seen


def measure(command: list[str], interval: float = 0.5) -> tuple[int, dict[str, float], float]:
    """Run `command`; its exit status, the CPU seconds by kind, and the machine's CPU seconds."""
    since = _boot_ticks_now()
    machine_before = _machine_cpu_seconds()
    totals: dict[str, float] = {}
    last: dict[tuple[int, int], tuple[str, float]] = {}
    child = subprocess.Popen(command)
    while True:
        done = child.poll() is not None
        now = {key: value for key, value in _processes().items() if key[1] >= since}
        for key, (line, cpu) in now.items():
            named = kind(line)
            totals[named] = totals.get(named, 0.0) + cpu - last.get(key, (line, 0.0))[1]
        last = now
        if done:
            return child.returncode, totals, _machine_cpu_seconds() - machine_before
        time.sleep(interval)


def report(totals: dict[str, float], machine: float) -> str:
    seen = sum(totals.values())
    rows = ["| process | CPU s | share |", "|---|---|---|"]
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        rows.append(f"| {name} | {seconds:.0f} | {100 * seconds / max(machine, 1e-9):.1f} % |")
    rows.append(
        f"| not seen (short-lived, or started before) | {machine - seen:.0f} | "
        f"{100 * (machine - seen) / max(machine, 1e-9):.1f} % |"
    )
    rows.append(f"| the whole machine | {machine:.0f} | 100 % |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples (default 0.5)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    status, totals, machine = measure(command, args.interval)
    print(report(totals, machine), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
