"""Properties over generated org charts and delegation sets (Hypothesis)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from approvals.people.directory import resolve_approvers
from approvals.plan.delegation_rules import DelegationRefused, Grant, active, check_new
from approvals.plan.people import Official
from approvals.plan.schema import Plan
from approvals.plan.stages import Policy
from approvals.plan.values import Text
from approvals.routing.policy import settle
from approvals.statuses import Outcome
from tests.approvals.test_routing import PLAN

ROLES = ["head", "deputy", "board"]
DAY0 = dt.date(2026, 7, 1)


@st.composite
def org_charts(draw) -> Plan:
    size = draw(st.integers(min_value=1, max_value=7))
    officials = []
    for i in range(size):
        roles = draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True))
        officials.append(
            Official(
                id=f"p{i}",
                name=f"Người {i}",
                email=f"p{i}@t.example",
                agency="dept",
                title=Text(vi="CB", en="Officer"),
                roles=roles,
            )
        )
    return PLAN.model_copy(update={"officials": officials, "delegations": []})


@st.composite
def delegation_sets(draw, people: int) -> list[Grant]:
    grants = []
    for _ in range(draw(st.integers(min_value=0, max_value=10))):
        start = DAY0 + dt.timedelta(days=draw(st.integers(0, 20)))
        grants.append(
            Grant(
                delegator=f"p{draw(st.integers(0, people - 1))}",
                delegate=f"p{draw(st.integers(0, people - 1))}",
                role=draw(st.sampled_from([None, *ROLES])),
                valid_from=start,
                valid_to=start + dt.timedelta(days=draw(st.integers(0, 15))),
            )
        )
    return grants


def accept(candidates: list[Grant]) -> list[Grant]:
    accepted: list[Grant] = []
    for grant in candidates:
        try:
            check_new(grant, accepted)
        except DelegationRefused:
            continue
        accepted.append(grant)
    return accepted


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_no_accepted_set_of_delegations_has_a_cycle_on_any_day(data):
    plan = data.draw(org_charts())
    accepted = accept(data.draw(delegation_sets(len(plan.officials))))
    for offset in range(0, 40):
        day = DAY0 + dt.timedelta(days=offset)
        for role in ROLES:
            edges = {d: g.delegate for d, g in active(accepted, role=role, on=day).items()}
            for start in edges:
                seen, node = set(), start
                while node in edges:
                    assert node not in seen, f"cycle through {node} on {day} for {role}"
                    seen.add(node)
                    node = edges[node]
    assert all(g.delegator != g.delegate for g in accepted)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_nobody_approves_their_own_step_through_any_chain(data):
    plan = data.draw(org_charts())
    accepted = accept(data.draw(delegation_sets(len(plan.officials))))
    requester = f"p{data.draw(st.integers(0, len(plan.officials) - 1))}"
    roles = data.draw(st.lists(st.sampled_from(ROLES), min_size=1, unique=True))
    day = DAY0 + dt.timedelta(days=data.draw(st.integers(0, 35)))
    approvers = resolve_approvers(plan, roles, on=day, delegations=accepted, requester=requester)
    for approver in approvers:
        assert approver.official.id != requester
        assert approver.on_behalf_of != requester
    assert len({a.official.id for a in approvers}) == len(approvers)


@given(st.lists(st.sampled_from([Outcome.approve, Outcome.reject]), min_size=1, max_size=6))
def test_any_is_decided_by_the_first_decision(decisions):
    assert settle(Policy.any, decisions, len(decisions)) is decisions[0]


@given(st.lists(st.sampled_from([Outcome.approve, Outcome.reject]), min_size=1, max_size=6))
def test_all_and_sequence_need_every_approval(decisions):
    for policy in (Policy.all, Policy.sequence):
        expected = Outcome.reject if Outcome.reject in decisions else Outcome.approve if len(decisions) == 6 else None
        assert settle(policy, decisions, 6) is expected
