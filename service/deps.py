"""What request handlers share: settings, plan, database, renderer, resumer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from approvals.config import Settings
from approvals.db import Database
from approvals.plan import Plan
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
    def mail_domain(self) -> str:
        return self.settings.mail_from.rsplit("@", 1)[-1]

    @property
    def organizer(self) -> tuple[str, str]:
        """The (name, address) calendar invites come from."""
        return self.settings.organizer


def get_app_state(request: Request) -> AppState:
    return request.app.state.kehoach


App = Annotated[AppState, Depends(get_app_state)]
