"""Routing policies: when does a set of decisions settle a request?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from approvals.plan.stages import Policy
from approvals.statuses import Outcome


def settle(policy: Policy, decisions: Sequence[Outcome], assignees: int, quorum: int | None = None) -> Outcome | None:
    """The request's outcome from the decisions so far (in the order made), or None while it stays open.

    A request for changes settles the request at once under every policy: the step
    goes back to the acting agency, whoever asked.
    """
    if Outcome.request_changes in decisions:
        return Outcome.request_changes
    approvals = decisions.count(Outcome.approve)
    rejections = decisions.count(Outcome.reject)
    if policy is Policy.any:
        return decisions[0] if decisions else None
    if policy in (Policy.all, Policy.sequence):
        if rejections:
            return Outcome.reject
        return Outcome.approve if approvals >= assignees else None
    if policy is Policy.quorum:
        needed = quorum or assignees
        if approvals >= needed:
            return Outcome.approve
        if assignees - rejections < needed:  # quorum can no longer be reached
            return Outcome.reject
        return None
    assert_never(policy)
