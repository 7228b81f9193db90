"""What can stop a signature, each under the project's one error base (`approvals.errors`)."""

from __future__ import annotations

from approvals.errors import Conflict, InvalidInput, Refused, Unavailable


class SigningRefused(Refused):
    """A signer may not sign: its certificate expired or is not yet valid, lacks the key usage
    a document signature needs, or does not chain to the configured trust roots."""


class SignerLocked(Refused):
    """A key could not be opened: a wrong password or PIN, or none given in the environment."""


class SignerUnavailable(Unavailable):
    """A part the signature needs cannot be reached now: the token is missing, the timestamp
    authority or the remote signing provider is down or slow. Try again once it is back."""


class RemoteSignatureLapsed(Conflict):
    """A remote signing request was refused on the phone or lapsed before the signer confirmed it."""


class NotASignedDocument(InvalidInput):
    """A file given to verify is not a PDF, or is unreadable."""
