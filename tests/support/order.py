"""The full suite's order across pytest-xdist's workers (tests/README.md, "How the full suite is
run"): the tests that start processes dealt out first, longest first, and the stacks and the
session's Prefect server a worker no longer needs stopped."""

from __future__ import annotations

import os

import pytest

# The tests that take longest, in seconds beside two other workers (tests/README.md, "Every
# test over 20 s"): a hint for sharing them out, not a measurement. A test that starts processes
# and is not named here counts DEFAULT_SECONDS; a test that starts none, nothing.
EXPECTED_SECONDS = {
    "tests/test_rehearse.py::": 330,  # a rehearsed year: mostly waiting on its clock, dealt first
    "tests/faults/test_faults.py::": 150,
    "tests/test_e2e_restart.py::test_a_run_killed_mid_stage": 100,
    "tests/test_bench.py::test_scale_bench": 108,
    "tests/approvals/test_concurrency.py::test_fifty_parallel_decisions": 60,
    "tests/test_e2e_chain.py::test_the_annual_chain": 80,
    "tests/api/test_schemathesis.py::": 45,
    "tests/test_e2e_one_run.py::": 30,
    "tests/test_e2e_restart.py::test_a_cancelled_cycle": 28,
    "tests/service/test_scanners.py::": 28,
    "tests/test_demo.py::": 28,
    "tests/test_e2e_approval.py::": 25,
    "tests/test_e2e_restart.py::": 21,
    "tests/test_e2e_cadences.py::": 20,
    "tests/test_e2e_reply.py::": 15,
    "tests/service/test_browser_queue.py::": 25,
    "tests/service/test_browser_short_link.py::": 25,  # Chromium at a phone's size, on the stack
    "tests/test_bench.py::test_replies_bench": 25,
    "tests/signing/test_pkcs11.py::": 1,  # a copied SoftHSM token: under a second each
}
DEFAULT_SECONDS = 4
# Only the tests that start processes are dealt first. An in-process test dealt among them (tried
# for the fast tier's tail, run 23) left its cycles' wakes in the worker's shared database while a
# stack's `kehoach web` ran: its resumer found no run for them and queued 150 coordinators' alerts
# that the notifications tests then found due in their outbox. Nor did it shorten the fast tier.


def expected_seconds(item) -> float:
    if item.get_closest_marker("processes") is None:
        return 0
    return next((s for prefix, s in EXPECTED_SECONDS.items() if item.nodeid.startswith(prefix)), DEFAULT_SECONDS)


def dealt(items: list, workers: int) -> tuple[list, list[int]]:
    """The order for `workers` workers of pytest-xdist's worksteal, which hands each worker a
    contiguous share of the order (as many tests each) and lets a worker that runs out take the
    far end of another's queue. Each share begins with its part of the tests that start
    processes, dealt longest first to the share with the least expected time, so that no worker
    is left with every long test to run one after another at the end; the rest of a share is
    in-process tests, in their order. A long test is dealt alone; the other tests of a module
    that starts processes stay together (they share its module-scoped processes). Also the
    index where each share begins."""
    units: dict[str, list] = {}
    for item in items:
        if expected_seconds(item) > 0:
            alone = any(item.nodeid.startswith(prefix) for prefix in EXPECTED_SECONDS)
            units.setdefault(item.nodeid if alone else _module(item), []).append(item)
    light = [i for i in items if expected_seconds(i) == 0]
    sizes, left = [], len(items)
    for k in range(workers):  # as worksteal cuts the order
        sizes.append(left // (workers - k))
        left -= sizes[-1]
    shares: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for unit in sorted(units.values(), key=lambda u: sum(map(expected_seconds, u)), reverse=True):
        room = [k for k in range(workers) if len(shares[k]) + len(unit) <= sizes[k]] or list(range(workers))
        k = min(room, key=lambda k: load[k])
        shares[k] += unit
        load[k] += sum(map(expected_seconds, unit))
    order, starts = [], []
    for k in range(workers):  # the longest tests of a share first
        shares[k].sort(key=expected_seconds, reverse=True)  # stable: a module's tests stay together
        starts.append(len(order))
        fill = max(0, sizes[k] - len(shares[k]))
        order += shares[k] + light[:fill]
        light = light[fill:]
    order += light
    return order, starts


def _module(item) -> str:
    return item.nodeid.split("::")[0]


def _stack_backend(item) -> str | None:
    """The backend whose stack (and the session's Prefect server) the test runs on, if any."""
    if "stack" not in item.fixturenames:
        return None
    return getattr(item, "callspec", None) and item.callspec.params.get("sandbox")


class Order:
    """The run's order (`dealt`: a share per worker of pytest-xdist, each beginning with its part
    of the tests that start processes), and what it lets go.

    A worker's stacks and the session's Prefect server idle at about 40 % of a core between them
    once no test needs them: when the next test a worker runs comes after the last one in its
    share that needs a backend's stack (or the Prefect server), the worker stops it. A test
    taken from another worker may need it again: a stack is then started again when asked for
    (`Stacks`), and the Prefect server before the test is set up (warm: its database kept)."""

    def __init__(self, config):
        self.config = config
        self.last_use: dict[tuple[int, str], int] = {}  # (share, what) -> the last index needing it
        self.index: dict[str, int] = {}
        self.share_of: dict[str, int] = {}

    @pytest.hookimpl(trylast=True)  # after pytest's own ordering, which keeps a module's tests of one backend together
    def pytest_collection_modifyitems(self, items):
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        items[:], starts = dealt(items, workers)
        self.index = {item.nodeid: n for n, item in enumerate(items)}
        self.share_of = {
            item.nodeid: max(k for k, start in enumerate(starts) if start <= n) for n, item in enumerate(items)
        }
        for n, item in enumerate(items):
            share = self.share_of[item.nodeid]
            backend = _stack_backend(item)
            if backend:
                self.last_use[(share, f"stack-{backend}")] = n
            if "prefect_server" in item.fixturenames:
                self.last_use[(share, "prefect")] = n

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        prefect = self.config.stash.get(SESSION_PREFECT, None)
        if prefect is not None and prefect.process is None and "prefect_server" in item.fixturenames:
            prefect.start(timeout=240)

    def pytest_runtest_teardown(self, item, nextitem):
        """What the rest of the share the next test belongs to no longer needs is stopped."""
        following = self.index[nextitem.nodeid] if nextitem is not None else len(self.index)
        share = self.share_of[nextitem.nodeid] if nextitem is not None else -1
        stacks = self.config.stash.get(RUNNING_STACKS, None)
        for backend in ("sqlite", "postgresql"):
            if stacks is not None and following > self.last_use.get((share, f"stack-{backend}"), -1):
                stacks.retire(backend)
        prefect = self.config.stash.get(SESSION_PREFECT, None)
        if (
            prefect is not None
            and following > self.last_use.get((share, "prefect"), -1)
            and not (stacks and stacks.running)
        ):
            prefect.stop()


RUNNING_STACKS = pytest.StashKey["Stacks"]()
SESSION_PREFECT = pytest.StashKey["LocalPrefectServer"]()
