"""A phone channel's call to its provider, read the same way for ZNS and eSMS: what is the
provider's JSON answer, and what is the delivery (or the delivery report) when there is none.

- **A send** (`post_json`): a timeout, a failed connection or a 5xx is tried again later; any
  other status than 200, or a body that is not a JSON object, is a refusal.
- **A question about a sent message** (`get_json`): anything but a JSON object with 200 leaves
  the report pending: it is asked again until its window closes (`notifications.delivery_reports`).
"""

from __future__ import annotations

from typing import Any

import httpx

from notifications.channels.base import Delivery, DeliveryReport


async def post_json(
    http: httpx.AsyncClient, path: str, *, provider: str, timeout: float, **request: Any
) -> dict[str, Any] | Delivery:
    """The provider's answer to a send, or the delivery when it gave none."""
    try:
        response = await http.post(path, **request)
    except httpx.TimeoutException:
        return Delivery.retry("timeout", f"{provider} did not answer within {timeout} s")
    except httpx.HTTPError as error:
        return Delivery.retry("connection", f"{provider}: {type(error).__name__}: {error}")
    status = response.status_code
    if status >= 500:
        return Delivery.retry(f"http-{status}", f"{provider} answered {status}")
    answer = _object(response) if status == 200 else None
    if answer is None:
        return Delivery.refused(f"http-{status}", f"{provider} answered {status}")
    return answer


async def get_json(
    http: httpx.AsyncClient, path: str, *, provider: str, **request: Any
) -> dict[str, Any] | DeliveryReport:
    """The provider's answer about a sent message, or a pending report when it gave none."""
    try:
        response = await http.get(path, **request)
    except httpx.HTTPError as error:
        return DeliveryReport.pending("connection", f"{provider}: {type(error).__name__}: {error}")
    answer = _object(response) if response.status_code == 200 else None
    if answer is None:
        return DeliveryReport.pending(f"http-{response.status_code}", f"{provider} answered {response.status_code}")
    return answer


def _object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
