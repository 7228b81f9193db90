"""The architecture as code: the import-linter contracts in pyproject.toml hold for the tree, and
a deliberate violation of each fails them (so a contract that checks nothing would be noticed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("approvals", "notifications", "flows", "service")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.processes  # lint-imports, on a copy of the tree


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the four packages and pyproject.toml, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("approvals/tokens.py", "from service import links", "The layers"),
        ("notifications/outbox.py", "import flows.chain", "The layers"),
        ("approvals/db.py", "import fastapi", "import no framework"),
        ("notifications/render.py", "import prefect", "import no framework"),
        ("approvals/tokens.py", "from approvals.routing import steps", "No import cycles"),
        ("approvals/plan/loader.py", "from approvals.clock import deadlines", "reads in order"),
        ("approvals/people/directory.py", "from approvals.clock import deadlines", "reads in order"),
        ("service/api/cycles.py", "from notifications.links import queue_closing_messages", "in one place"),
        ("flows/sweep.py", "import notifications.links", "in one place"),
    ],
)
def test_a_violation_breaks_its_contract(tree, module, line, broken):
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # a deliberate violation\n", encoding="utf-8")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    verdicts = [line for line in result.stdout.splitlines() if line.endswith((" KEPT", " BROKEN"))]
    assert len(verdicts) == 5, result.stdout
    assert next(v for v in verdicts if broken in v).endswith(" BROKEN"), result.stdout


@pytest.mark.parametrize("module", ["flows.annual_cycle", "flows.cadences"])
def test_a_cycles_flow_run_loads_no_signing_stack(module):
    """Prefect starts a process for every flow run and every resume, and each imports its flow's
    module: the signing stack (pyHanko, fontTools) comes in only when a run issues a report."""
    probe = (
        f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'pyhanko', 'fontTools'}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
