"""What coordinators read and do: who holds what, a request's history, and the actions
they take by hand (remind, escalate, reassign, cancel a cycle, record an event).

Every function works inside the caller's transaction and only flushes; the caller
queues the emails for the assignments returned, in that same transaction, and
commits. Actions lock requests with `lock_request` (in id order when there are
several), like decisions and the sweep, so they queue instead of racing.

- `reads`: the cycles and their progress, requests by filter, who is waited on, a history;
- `actions`: remind, escalate, reassign, cancel a cycle, revoke a delegation;
- `records`: economic events and problem reports, recorded and listed.
"""

from __future__ import annotations

from approvals.coordination.actions import (
    Acted,
    Cancelled,
    cancel_cycle,
    escalate,
    reassign,
    remind,
    remind_many,
    revoke_delegation,
)
from approvals.coordination.reads import (
    CYCLE_CANCELLED,
    UNROUTED_ACTIONS,
    CycleView,
    History,
    RequestView,
    StageProgress,
    Waiting,
    cancelled_cycles,
    cycle_cancelled,
    cycles,
    find_requests,
    history,
    unrouted_steps,
    waiting_on,
)
from approvals.coordination.records import (
    events_without_cycle,
    list_events,
    list_problems,
    problems_without_cycle,
    record_event,
    record_problem,
)

__all__ = [
    "CYCLE_CANCELLED",
    "UNROUTED_ACTIONS",
    "Acted",
    "Cancelled",
    "CycleView",
    "History",
    "RequestView",
    "StageProgress",
    "Waiting",
    "cancel_cycle",
    "cancelled_cycles",
    "cycle_cancelled",
    "cycles",
    "escalate",
    "events_without_cycle",
    "find_requests",
    "history",
    "list_events",
    "list_problems",
    "problems_without_cycle",
    "reassign",
    "record_event",
    "record_problem",
    "remind",
    "remind_many",
    "revoke_delegation",
    "unrouted_steps",
    "waiting_on",
]
