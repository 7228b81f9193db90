"""`kehoach report verify FILE`: each digital signature of an issued report, as anyone who
receives it can check it (the PPC's văn thư, a ministry), with pyHanko's validation."""

from __future__ import annotations

from pathlib import Path

import typer

from service.cli.common import load_settings

report_app = typer.Typer(help="Issued reports.", no_args_is_help=True)


@report_app.command("verify")
def verify_report(
    file: Path = typer.Argument(..., help="The issued report's PDF, as received.", exists=False),
    trust_root: list[Path] = typer.Option(
        [],
        "--trust-root",
        help="A root certificate (PEM or DER) to trust; repeatable. Default: the signing file's roots "
        "(KEHOACH_SIGNING_FILE), or in development the data folder's test CA.",
    ),
    lang: str = typer.Option("vi", "--lang", help="vi or en."),
) -> None:
    """List each signature of a report: who signed and when, whether the file is intact since,
    whether the certificate chains to the trust roots and was valid at signing. Exit 0 when every
    signature is valid, 1 when one is not or there is none, 2 when the file cannot be read."""
    from approvals.errors import KehoachError
    from approvals.i18n import LANGUAGES, catalogue
    from approvals.plan import load_plan
    from approvals.signing.signers import read_certificate, signers_for
    from approvals.signing.verification import Verdict, verify
    from service.web import MESSAGES

    if lang not in LANGUAGES:
        typer.echo(f"unknown language {lang!r} (use vi or en)", err=True)
        raise typer.Exit(2)
    _ = catalogue(MESSAGES).gettext_for(lang)
    try:
        pdf = file.read_bytes()
        if trust_root:
            roots = [read_certificate(path) for path in trust_root]
        else:
            settings = load_settings()
            roots = signers_for(settings, load_plan(settings.plan_file)).trust_roots()
        checks = verify(pdf, trust_roots=roots)
    except OSError as error:
        typer.echo(f"{file}: {error.strerror or error}", err=True)
        raise typer.Exit(2) from None
    except KehoachError as error:
        typer.echo(f"{file}: {error}", err=True)
        raise typer.Exit(2) from None

    typer.echo(_("verify.roots", n=len(roots)))
    if not checks:
        typer.echo(_("verify.unsigned"))
        raise typer.Exit(1)

    def yes(value: bool) -> str:
        return _("verify.yes") if value else _("verify.no")

    for n, check in enumerate(checks, 1):
        typer.echo(f"\n{_('verify.signature')} {n} ({check.field}): {check.summary(lang)}")
        if check.by_test_certificate:
            typer.echo(f"  {_('verify.test')}")
        typer.echo(f"  {_('verify.signed_at')}: {check.signed_at.isoformat() if check.signed_at else _('verify.none')}")
        typer.echo(f"  {_('verify.timestamp')}: {check.timestamp.isoformat() if check.timestamp else _('verify.none')}")
        later = (
            f" ({_('verify.later')}: {check.modification_level})"
            if check.modification_level not in (None, "none")
            else ""
        )
        typer.echo(f"  {_('verify.intact')}: {yes(check.intact)}{later}")
        typer.echo(f"  {_('verify.trusted')}: {yes(check.trusted)}")
        typer.echo(f"  {_('verify.long_term')}: {yes(check.long_term)}")
        typer.echo(f"  {_('verify.fingerprint')}: {check.fingerprint}")
        typer.echo(
            f"  {_('verify.verdict')}: {check.verdict.text(lang)}" + (f" ({check.problem})" if check.problem else "")
        )
    if any(check.verdict is not Verdict.valid for check in checks):
        raise typer.Exit(1)
