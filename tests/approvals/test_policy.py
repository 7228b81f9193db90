"""When does a set of decisions settle a request? Table tests and generated orders."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from approvals.clock.deadlines import due_at
from approvals.plan.stages import Due, Policy
from approvals.routing.policy import settle
from approvals.statuses import Outcome

A, R, C = Outcome.approve, Outcome.reject, Outcome.request_changes


@pytest.mark.parametrize(
    ("policy", "decisions", "assignees", "quorum", "expected"),
    [
        (Policy.any, [], 3, None, None),
        (Policy.any, [R], 3, None, R),
        (Policy.any, [A, R], 3, None, A),
        (Policy.all, [A, A], 3, None, None),
        (Policy.all, [A, A, A], 3, None, A),
        (Policy.all, [A, R], 3, None, R),  # one rejection ends it early
        (Policy.quorum, [A], 3, 2, None),
        (Policy.quorum, [A, A], 3, 2, A),
        (Policy.quorum, [R, R], 3, 2, R),  # 2 of 3 can no longer be reached
        (Policy.quorum, [R, A], 3, 2, None),
        (Policy.sequence, [A], 2, None, None),
        (Policy.sequence, [A, A], 2, None, A),
        (Policy.any, [C], 1, None, C),
        (Policy.all, [A, C], 3, None, C),
    ],
)
def test_settle(policy, decisions, assignees, quorum, expected):
    assert settle(policy, decisions, assignees, quorum) == expected


@given(st.lists(st.sampled_from([A, R]), min_size=1, max_size=7), st.integers(min_value=1, max_value=7))
def test_quorum_settles_exactly_when_the_count_is_decided(decisions, needed):
    assignees = len(decisions)
    needed = min(needed, assignees)
    outcome = settle(Policy.quorum, decisions, assignees, needed)
    approvals, rejections = decisions.count(A), decisions.count(R)
    if approvals >= needed:
        assert outcome is A
    elif assignees - rejections < needed:
        assert outcome is R
    else:
        assert outcome is None


@given(st.permutations([A, A, A, R]))
def test_all_of_rejects_in_any_order(order):
    assert settle(Policy.all, list(order), 4) is R


TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def test_before_30_november_means_the_end_of_29_november_local():
    due = due_at(Due(month=11, day=30, inclusive=False), cycle_start=dt.date(2026, 1, 15), tz=TZ)
    assert due == dt.datetime(2026, 11, 29, 16, 59, 59, 999999, tzinfo=dt.UTC)


def test_inclusive_fixed_day_and_offsets():
    assert due_at(Due(month=11, day=30, inclusive=True), cycle_start=dt.date(2026, 1, 15), tz=TZ).astimezone(
        TZ
    ).date() == dt.date(2026, 11, 30)
    assert due_at(Due(offset_days=14), cycle_start=dt.date(2026, 1, 15), tz=TZ).astimezone(TZ).date() == dt.date(
        2026, 1, 29
    )
