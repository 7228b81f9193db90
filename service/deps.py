"""What request handlers share: settings, plan, database, renderer, resumer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from approvals.config import Settings
from approvals.db import Database
from approvals.plan import Plan
from notifications.emails import Emails
from notifications.render import Renderer
from service.resume import Resumer


@dataclass
class AppState:
    settings: Settings
    plan: Plan
    db: Database
    renderer: Renderer
    resumer: Resumer

    @property
    def emails(self) -> Emails:
        """What a request's handling sends, queued in its transaction."""
        return Emails.of(self.plan, self.settings, self.renderer)


def get_app_state(request: Request) -> AppState:
    return request.app.state.kehoach


App = Annotated[AppState, Depends(get_app_state)]
