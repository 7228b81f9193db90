"""The coordinators' API under /api/v1: bearer token required on every route; viewers read,
coordinators act. Each action is one transaction with its audit rows and its emails."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api import approval_requests, cycles, delegations, economic_events, officials, problems, reports
from service.api.auth import require_caller
from service.api.errors import READ

PREFIX = "/api/v1"

router = APIRouter(prefix=PREFIX, dependencies=[Depends(require_caller)], responses=READ)
for module in (cycles, approval_requests, officials, delegations, economic_events, problems, reports):
    router.include_router(module.router)
