"""Email rendering: one Jinja2 environment, HTML and plain text, Vietnamese or English."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from jinja2 import ChoiceLoader, UndefinedError, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from approvals.i18n import catalogue

PACKAGE_DIR = Path(__file__).resolve().parent
MESSAGES = PACKAGE_DIR / "locale" / "messages.yaml"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class Renderer:
    """Templates are looked up first in `override_dir` (a deployment's own), then in the package."""

    def __init__(self, override_dir: Path | None = None):
        loaders = [FileSystemLoader(str(override_dir))] if override_dir else []
        loaders.append(FileSystemLoader(str(PACKAGE_DIR / "templates")))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self.catalogue = catalogue(MESSAGES)

    def render(self, kind: str, language: str, **context: object) -> RenderedEmail:
        _ = self.catalogue.gettext_for(language)
        values = {k: unicodedata.normalize("NFC", v) if isinstance(v, str) else v for k, v in context.items()}
        try:
            subject = _(f"{kind}.subject", **{k: v for k, v in values.items() if isinstance(v, str)})
        except KeyError as exc:
            raise UndefinedError(f"the subject of '{kind}' needs {exc.args[0]!r}") from None
        common = {"_": _, "language": language, "subject": subject, **values}
        text = self.env.get_template(f"{kind}.txt.j2").render(common)
        html = self.env.get_template(f"{kind}.html.j2").render(common)
        return RenderedEmail(
            subject=unicodedata.normalize("NFC", subject),
            text=unicodedata.normalize("NFC", text),
            html=unicodedata.normalize("NFC", html),
        )
