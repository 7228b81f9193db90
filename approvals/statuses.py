"""The states things go through: a cycle's stage, a request, an assignment and a wake (a run to
resume), and a decision's outcomes with the request status each settles on. Stored as their
string values."""

from __future__ import annotations

from enum import Enum


class StageStatus(str, Enum):
    waiting = "waiting"
    done = "done"
    rejected = "rejected"
    changes_requested = "changes_requested"
    expired = "expired"
    scheduled = "scheduled"  # reached, but opens on its own date (the annual report: 1 October)
    skipped = "skipped"  # a stage it depends on ended without an approval: never opened
    lapsed = "lapsed"  # nothing came by the due time and the plan says the chain goes on without it

    @property
    def passes(self) -> bool:
        """Whether what depends on this stage may go on."""
        return self in (StageStatus.done, StageStatus.lapsed)


class RequestStatus(str, Enum):
    awaiting_submission = "awaiting_submission"  # the acting agency has not submitted yet: nobody decides
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    changes_requested = "changes_requested"
    expired = "expired"  # the timeout policy ended it: never an approval

    @property
    def open(self) -> bool:
        return self in (RequestStatus.awaiting_submission, RequestStatus.pending)


class AssignmentStatus(str, Enum):
    waiting = "waiting"  # in a sequence, not asked yet
    pending = "pending"
    decided = "decided"
    revoked = "revoked"  # handed over on escalation
    reassigned = "reassigned"  # a coordinator moved it to someone else
    closed = "closed"  # the request reached its outcome through someone else


class Outcome(str, Enum):
    approve = "approve"
    reject = "reject"
    request_changes = "request_changes"


OUTCOME_TO_STATUS = {
    Outcome.approve: RequestStatus.approved,
    Outcome.reject: RequestStatus.rejected,
    Outcome.request_changes: RequestStatus.changes_requested,
}


class WakeStatus(str, Enum):
    queued = "queued"
    delivering = "delivering"
    done = "done"
    parked = "parked"  # can never be delivered: shown to coordinators, not retried


class RemoteSignatureStatus(str, Enum):
    """A director's signature asked of a remote signing provider (`approvals.consolidated.remote_director`)."""

    awaiting = "awaiting"  # asked: the director has not confirmed on the phone yet
    signed = "signed"  # the signature value came back: the run finishes the signature
    lapsed = "lapsed"  # refused on the phone, expired, or refused by the provider


class LinkStatus(str, Enum):
    """A submission link's state."""

    pending = "pending"  # waiting for the (re)submission
    used = "used"  # the step was submitted through it
    closed = "closed"  # the step ended another way (decided, cancelled, reassigned)


class LinkKind(str, Enum):
    """What a submission link asks for."""

    first = "first"  # the step's submission
    resubmission = "resubmission"  # again, after a request for changes
