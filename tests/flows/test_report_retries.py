"""The issue-report task tries a failed issue again only where trying again can help: a wrong
PIN tried three times locks a real token (issue 24, 'a wrong PIN: a clear error')."""

from __future__ import annotations

import pytest
from prefect.states import Failed

from approvals.signing.errors import SignerLocked, SignerUnavailable, SigningRefused
from flows.reports import issue_report, worth_retrying


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (SignerLocked("wrong PIN for token 'NGUYEN VAN AN'"), False),
        (SigningRefused("the certificate of Nông Thị Hạnh has expired"), False),
        (SignerUnavailable("the timestamp authority did not answer in 10 s"), True),
        (ConnectionResetError("the database went away"), True),
    ],
)
def test_a_refused_signature_is_not_tried_again_and_an_unavailable_part_is(error, retried):
    assert issue_report.retry_condition_fn is worth_retrying and issue_report.retries == 2
    assert worth_retrying(issue_report, None, Failed(data=error)) is retried
