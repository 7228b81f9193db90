"""A page's form as a simulated official reads it: what it asks (the outcome choices of a
decision, the boxes of a submission), what it already holds (the consolidation's suggested
summary, the text a resubmission sends again), and a queue's steps (the boxes to tick, the ones
ticked)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class PageForm:
    choices: list[str] = field(default_factory=list)  # a decision's outcomes; empty on a submission form
    boxes: dict[str, str] = field(default_factory=dict)  # textarea name -> what it holds
    required: set[str] = field(default_factory=set)
    inputs: dict[str, str] = field(default_factory=dict)  # text and hidden inputs: name -> value
    fields: list[tuple[str, str]] = field(default_factory=list)  # the same in order, a repeated name kept
    steps: list[str] = field(default_factory=list)  # a queue's step boxes ("b"): each step's id
    ticked: list[str] = field(default_factory=list)  # those ticked

    def sent(self, **more: str) -> dict[str, list[str]]:
        """What sending the form as it stands posts (its inputs, its boxes, its ticked steps), and `more`."""
        posted: dict[str, list[str]] = {}
        for name, value in [*self.fields, *self.boxes.items(), *(("b", s) for s in self.ticked), *more.items()]:
            posted.setdefault(name, []).append(value)
        return posted

    @property
    def decides(self) -> bool:
        return bool(self.choices)


class _Reader(HTMLParser):
    """The first POST form of a page (the step's own: the sign-out form is never on a link's page)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form: PageForm | None = None
        self.inside = False
        self.done = False
        self.box: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if self.done:
            return
        if tag == "form" and a.get("method", "").lower() == "post":
            self.form, self.inside = PageForm(), True
        elif not self.inside or self.form is None or "name" not in a:
            return
        elif tag == "textarea":
            self.box = a["name"]
            self.form.boxes[self.box] = ""
            if "required" in a:
                self.form.required.add(self.box)
        elif tag == "input" and a.get("type") == "radio" and a["name"] == "outcome":
            self.form.choices.append(a.get("value", ""))
        elif tag == "input" and a.get("type") == "checkbox" and a["name"] == "b":
            self.form.steps.append(a.get("value", ""))
            if "checked" in a:
                self.form.ticked.append(a.get("value", ""))
        elif tag == "input" and a.get("type", "text") in ("text", "hidden"):
            self.form.inputs[a["name"]] = a.get("value", "")
            self.form.fields.append((a["name"], a.get("value", "")))
            if "required" in a:
                self.form.required.add(a["name"])

    def handle_data(self, data: str) -> None:
        if self.box is not None and self.form is not None:
            self.form.boxes[self.box] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self.box = None
        elif tag == "form" and self.inside:
            self.inside, self.done = False, True


def read_form(page: str) -> PageForm | None:
    """The step's form on a link's page, or None (a closed step's page has none)."""
    reader = _Reader()
    reader.feed(page)
    return reader.form
