"""What every command shares: the settings, or a clear error and exit 2."""

from __future__ import annotations

import typer


def load_settings():
    """The configuration from KEHOACH_* (approvals.config); a bad value exits 2 with its message."""
    from approvals.config import get_settings

    try:
        return get_settings()
    except ValueError as exc:
        typer.echo(f"Configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
