"""Line coverage per package, from the combined data of `coverage run` (tests/README.md):

.venv/bin/python -m tests.support.coverage_by_package
"""

from __future__ import annotations

from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("approvals", "notifications", "flows", "service")


def by_package() -> dict[str, tuple[int, int]]:
    """Each package's (statements, statements run); a file no test imported counts as not run."""
    data = coverage.Coverage()
    data.load()
    totals = {}
    for package in PACKAGES:
        statements = run = 0
        for path in sorted((ROOT / package).rglob("*.py")):
            _, lines, _, missing, _ = data.analysis2(str(path))
            statements += len(lines)
            run += len(lines) - len(missing)
        totals[package] = (statements, run)
    return totals


def main() -> None:
    for package, (statements, run) in by_package().items():
        print(f"{package:14} {run:6} of {statements:6} lines  {100 * run / max(statements, 1):5.1f} %")


if __name__ == "__main__":
    main()
