"""Delegation ("ủy quyền"): who acts for whom, on which day, for which role.

Pure functions over a list of delegations, used by the plan checks, the database
layer and the approver resolution alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from approvals.errors import Refused


class DelegationLike(Protocol):
    """A delegation as the rules read it: the plan file's (DelegationSpec), or one made through
    the API (a Grant of a Delegation row). Read-only: both are frozen."""

    @property
    def delegator(self) -> str: ...
    @property
    def delegate(self) -> str: ...
    @property
    def role(self) -> str | None: ...
    @property
    def valid_from(self) -> dt.date: ...
    @property
    def valid_to(self) -> dt.date: ...


@dataclass(frozen=True)
class Grant:
    delegator: str
    delegate: str
    role: str | None
    valid_from: dt.date
    valid_to: dt.date


class DelegationRefused(Refused):
    """The delegation would break a rule (cycle, self, dates, unknown official)."""


def _covers(d: DelegationLike, role: str | None) -> bool:
    return d.role is None or role is None or d.role == role


def _overlap(a: DelegationLike, b: DelegationLike) -> bool:
    return a.valid_from <= b.valid_to and b.valid_from <= a.valid_to


def active(delegations: Iterable[DelegationLike], *, role: str, on: dt.date) -> dict[str, DelegationLike]:
    """Delegator -> delegation in force on a day for a role (a role-specific one beats a general one)."""
    chosen: dict[str, DelegationLike] = {}
    for d in delegations:
        if d.valid_from <= on <= d.valid_to and _covers(d, role):
            current = chosen.get(d.delegator)
            if current is None or (current.role is None and d.role is not None):
                chosen[d.delegator] = d
    return chosen


def chain(official: str, delegations: Iterable[DelegationLike], *, role: str, on: dt.date) -> list[str]:
    """The officials a step passes through: [holder, delegate, delegate's delegate, ...]."""
    in_force = active(delegations, role=role, on=on)
    path = [official]
    while path[-1] in in_force:
        nxt = in_force[path[-1]].delegate
        if nxt in path:  # cannot happen for accepted delegations; stop rather than loop
            break
        path.append(nxt)
    return path


def check_new(new: DelegationLike, existing: Sequence[DelegationLike]) -> None:
    """Refuse a delegation that is to oneself, has its dates backwards, or closes a cycle
    with delegations whose dates and roles overlap it."""
    if new.delegator == new.delegate:
        raise DelegationRefused("an official cannot delegate to themselves")
    if new.valid_to < new.valid_from:
        raise DelegationRefused(f"valid_to {new.valid_to} is before valid_from {new.valid_from}")
    relevant = [d for d in existing if _overlap(d, new) and _covers(d, new.role)]
    # Is the delegator reachable from the delegate through overlapping delegations?
    edges: dict[str, set[str]] = {}
    for d in relevant:
        edges.setdefault(d.delegator, set()).add(d.delegate)
    seen, stack = set(), [new.delegate]
    while stack:
        node = stack.pop()
        if node == new.delegator:
            raise DelegationRefused(
                f"delegating from {new.delegator} to {new.delegate} would form a cycle of delegations"
            )
        if node not in seen:
            seen.add(node)
            stack.extend(edges.get(node, ()))
