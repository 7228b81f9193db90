"""Load a plan file and report every problem as `file:line: path: what is wrong`."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from approvals.plan.checks import cross_reference_problems
from approvals.plan.schema import Plan


@dataclass(frozen=True)
class PlanProblem:
    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class PlanError(Exception):
    def __init__(self, problems: list[PlanProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_index(node: yaml.Node, loc: tuple[Any, ...] = (), index: dict | None = None) -> dict[tuple, int]:
    """Map each path in the document to the 1-based line where its value starts."""
    index = {} if index is None else index
    index[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            index[loc + (key.value,)] = key.start_mark.line + 1
            _line_index(value, loc + (key.value,), index)
            index[loc + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, loc + (i,), index)
    return index


def _line_for(index: dict[tuple, int], loc: tuple[Any, ...]) -> int | None:
    while loc:
        if loc in index:
            return index[loc]
        loc = loc[:-1]
    return index.get(())


def _nfc(value: Any) -> Any:
    """Vietnamese text is stored in NFC whatever form the file used."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {_nfc(k): _nfc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nfc(v) for v in value]
    return value


def _pydantic_message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling)"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def parse_plan(text: str, file: str) -> Plan:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        detail = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        raise PlanError([PlanProblem(file, "", f"YAML syntax error: {detail}", line)]) from exc
    if node is None or not isinstance(data, dict):
        raise PlanError([PlanProblem(file, "", "the plan must be a YAML mapping with plan, agencies, roles, cycles", 1)])
    lines = _line_index(node)
    try:
        plan = Plan.model_validate(_nfc(data))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            problems.append(PlanProblem(file, format_path(loc), _pydantic_message(error), _line_for(lines, loc)))
        raise PlanError(problems) from None
    problems = [
        PlanProblem(file, format_path(loc), message, _line_for(lines, loc))
        for loc, message in cross_reference_problems(plan)
    ]
    if problems:
        raise PlanError(problems)
    return plan


def load_plan(path: Path | str) -> Plan:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError([PlanProblem(str(path), "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise PlanError([PlanProblem(str(path), "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    return parse_plan(text, str(path))
