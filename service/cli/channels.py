"""`kehoach channels check`: what each message kind says on Zalo (ZNS) and by SMS, checked
before anything is sent: its approved ZNS template id (settings) and parameters, and its SMS
text's segments with the longest values and a short link on this deployment's host."""

from __future__ import annotations

import typer

from service.cli.common import load_settings

channels_app = typer.Typer(help="Zalo (ZNS) and SMS: the templates of each message kind.", no_args_is_help=True)


@channels_app.command("check")
def channels_check(lang: str = typer.Option("vi", "--lang", help="vi or en.")) -> None:
    """List each message kind with its ZNS template id and parameters and its SMS's segments. Exit 1 when Zalo is on and a kind has no approved ZNS template id (KEHOACH_ZNS_TEMPLATES), or when an SMS takes more than two segments; 2 when the templates file is broken."""  # noqa: E501 (typer keeps a paragraph's line breaks in --help)
    from approvals.i18n import LANGUAGES, catalogue
    from notifications.channels.base import is_transaction
    from notifications.channels.segments import sms_segments, sms_units
    from notifications.channels.templates import MAX_SMS_SEGMENTS, TemplatesInvalid, read_templates
    from service.web import MESSAGES

    if lang not in LANGUAGES:
        typer.echo(f"unknown language {lang!r} (use vi or en)", err=True)
        raise typer.Exit(2)
    _ = catalogue(MESSAGES).gettext_for(lang)
    settings = load_settings()
    try:
        templates = read_templates()
    except TemplatesInvalid as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    problems = 0
    if not settings.zalo_enabled:
        typer.echo(_("channels.zalo_off"))
    unknown = sorted(set(settings.zns_templates) - set(templates))
    if unknown:
        typer.echo(_("channels.unknown_kind", kinds=", ".join(unknown)))
        problems += 1
    for kind, entry in templates.items():
        hours = _("channels.kind.transaction") if is_transaction(kind) else _("channels.kind.daytime")
        typer.echo(f"\n{kind} ({hours})")
        template_id = settings.zns_templates.get(kind, "")
        if not template_id and settings.zalo_enabled:
            problems += 1
        typer.echo(f"  {_('channels.zns')}: {template_id or _('channels.zns.missing')}")
        typer.echo(f"    {_('channels.zns.params')}: " + ", ".join(f"{p} = {s}" for p, s in entry.zns.params.items()))
        if entry.zns.button_param:
            typer.echo(f"    {_('channels.zns.button', label=entry.zns.button_label, param=entry.zns.button_param)}")
        sample = entry.sms_sample(settings.public_base_url)
        segments = sms_segments(sample)
        if segments > MAX_SMS_SEGMENTS:
            problems += 1
        mark = "" if segments <= MAX_SMS_SEGMENTS else "  <-- "
        typer.echo(f"  {_('channels.sms', segments=segments, units=sms_units(sample), most=MAX_SMS_SEGMENTS)}{mark}")
        typer.echo(f"    {sample}")
    typer.echo("")
    if problems:
        typer.echo(_("channels.problems", n=problems), err=True)
        raise typer.Exit(1)
    typer.echo(_("channels.ok"))


@channels_app.command("zalo-token")
def zalo_token(
    expires_in: float = typer.Option(90000, min=0, help="Seconds the access token has left (Zalo's expires_in)."),
) -> None:
    """Store the Zalo OA's tokens after an administrator authorised the app (first, or after a refresh failed). The tokens come from KEHOACH_ZALO_ACCESS_TOKEN and KEHOACH_ZALO_REFRESH_TOKEN, or are asked for without echo: never on the command line."""  # noqa: E501 (typer keeps a paragraph's line breaks in --help)
    import asyncio
    import os

    from approvals.db import Database
    from notifications.channels.zalo_token import store_tokens

    settings = load_settings()
    if not settings.zalo_app_id:
        typer.echo("KEHOACH_ZALO_APP_ID is not set", err=True)
        raise typer.Exit(2)
    access = os.environ.get("KEHOACH_ZALO_ACCESS_TOKEN") or typer.prompt("Access token", hide_input=True)
    refresh = os.environ.get("KEHOACH_ZALO_REFRESH_TOKEN") or typer.prompt("Refresh token", hide_input=True)

    async def main() -> None:
        db = Database(settings.effective_database_url)
        try:
            await store_tokens(
                db, settings.zalo_app_id, access_token=access, refresh_token=refresh, expires_in=expires_in
            )
        finally:
            await db.dispose()

    asyncio.run(main())
    typer.echo(f"Zalo tokens of app {settings.zalo_app_id} stored.")
