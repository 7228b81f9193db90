"""Load a plan file and report every problem as `file:line: path: what is wrong`."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from approvals.errors import InvalidInput
from approvals.plan.checks import branch_problems, cross_reference_problems, format_path
from approvals.plan.schema import Plan

__all__ = ["PlanError", "PlanProblem", "check_plan", "format_path", "load_plan", "parse_plan"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class PlanProblem:
    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class PlanError(InvalidInput):
    def __init__(self, problems: list[PlanProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _key(node: yaml.Node) -> Any:
    """A mapping key as it appears in a path: scalars by their text, in NFC like the data."""
    if isinstance(node, yaml.ScalarNode):
        return unicodedata.normalize("NFC", node.value)
    return node.value


def _line_index(
    node: yaml.Node, loc: tuple[Any, ...] = (), index: dict[tuple[Any, ...], int] | None = None
) -> dict[tuple[Any, ...], int]:
    """Map each path in the document to the 1-based line where its value starts.

    A mapping entry maps to the line of its key. When a key is repeated the last
    one wins, as it does in the loaded data.
    """
    index = {} if index is None else index
    index[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _line_index(value, loc + (_key(key),), index)
            index[loc + (_key(key),)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, loc + (i,), index)
    return index


def _duplicate_keys(node: yaml.Node, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str, int]]:
    """Keys given twice in one mapping; PyYAML would silently keep the last one."""
    constructor = yaml.constructor.SafeConstructor()
    seen_nodes: set[int] = set()

    def walk(node: yaml.Node, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str, int]]:
        if id(node) in seen_nodes:  # an alias: already checked where its anchor was
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key, value in node.value:
                if key.tag == _MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                    yield from walk(value, loc + (_key(key),))
                    continue
                try:
                    ident = constructor.construct_object(key)
                except yaml.YAMLError:
                    ident = (key.tag, key.value)
                if isinstance(ident, str):
                    ident = unicodedata.normalize("NFC", ident)
                line = key.start_mark.line + 1
                if ident in first:
                    yield loc + (_key(key),), f"duplicate key '{_key(key)}' (first at line {first[ident]})", line
                else:
                    first[ident] = line
                yield from walk(value, loc + (_key(key),))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                yield from walk(item, loc + (i,))

    yield from walk(node, loc)


def _line_for(index: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
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


def _pydantic_message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling)"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def _syntax_problem(text: str, file: str, exc: yaml.YAMLError) -> PlanProblem:
    """One line for a YAML error: PyYAML's problem, its context if any, at the problem's line."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return PlanProblem(file, "", f"YAML syntax error: character U+{character:04X} is not allowed in YAML", line)
    mark = getattr(exc, "problem_mark", None)
    detail = getattr(exc, "problem", None) or " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    if context:
        context_mark = getattr(exc, "context_mark", None)
        if context_mark is None:
            detail += f" ({context})"
        elif context.startswith(("while parsing a", "while scanning a", "while constructing a")):
            detail += f" ({context} started at line {context_mark.line + 1})"
        else:
            detail += f" ({context} at line {context_mark.line + 1})"
    if "'\\t'" in detail:
        detail += "; indent with spaces, not tabs"
    if mark is None:
        mark = getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    return PlanProblem(file, "", f"YAML syntax error: {detail}", line)


def _recursive_anchor(node: yaml.Node) -> yaml.Node | None:
    """A collection that contains itself through an alias, if any (it cannot be a plan)."""
    active: set[int] = set()  # the nodes on the way down to the current one
    done: set[int] = set()  # nodes already searched, so shared aliases are searched once

    def search(node: yaml.Node) -> yaml.Node | None:
        if id(node) in active:
            return node
        if isinstance(node, yaml.ScalarNode) or id(node) in done:
            return None
        active.add(id(node))
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
        found = next((hit for child in children if (hit := search(child)) is not None), None)
        active.discard(id(node))
        done.add(id(node))
        return found

    return search(node)


def _compose(text: str, file: str) -> tuple[yaml.Node | None, Any, list[PlanProblem]]:
    """Parse once: the node tree (for lines), duplicate keys, and the data built from the tree.

    Duplicate keys are looked for before the data is constructed, because
    constructing resolves merge keys (<<) by rewriting the tree's mappings.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None, []
        recursive = _recursive_anchor(node)
        if recursive is not None:
            line = recursive.start_mark.line + 1
            raise PlanError([PlanProblem(file, "", "YAML alias makes a collection contain itself", line)])
        duplicates = [
            PlanProblem(file, format_path(loc), message, line) for loc, message, line in _duplicate_keys(node)
        ]
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return node, data, duplicates


def parse_plan(text: str, file: str, *, years: tuple[int, ...] = ()) -> Plan:
    try:
        node, data, problems = _compose(text, file)
    except yaml.YAMLError as exc:
        raise PlanError([_syntax_problem(text, file, exc)]) from exc
    if node is None or not isinstance(data, dict):
        raise PlanError(
            [PlanProblem(file, "", "the plan must be a YAML mapping with plan, agencies, roles, cycles", 1)]
        )
    lines = _line_index(node)
    try:
        plan = Plan.model_validate(_nfc(data))
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            problems.append(PlanProblem(file, format_path(loc), _pydantic_message(error), _line_for(lines, loc)))
        plan = None
    if plan is not None:
        found = cross_reference_problems(plan)
        if not found:  # a plan whose references do not resolve cannot be routed at all
            found = [problem for year in years for problem in branch_problems(plan, year)]
        problems += [PlanProblem(file, format_path(loc), message, _line_for(lines, loc)) for loc, message in found]
    if problems:
        # Stable: problems on one line keep the order they were found in.
        problems.sort(key=lambda p: p.line if p.line is not None else 0)
        raise PlanError(problems)
    assert plan is not None, "a plan that failed validation has problems"
    return plan


# The last plan parsed from each file, with the text it came from. Parsing (YAML with line
# numbers, then validation) takes ~150 ms, and every flow task and sweep loads the plan.
_PARSED: dict[str, tuple[str, Plan]] = {}


def check_plan(path: Path | str, *, years: tuple[int, ...]) -> Plan:
    """The plan in `path`, checked as `kehoach plan check` does: everything `load_plan` checks,
    and that every branch of every stage can be routed in each of `years`."""
    path = Path(path)
    text = _read(path)
    return parse_plan(text, str(path), years=years)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError([PlanProblem(str(path), "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise PlanError([PlanProblem(str(path), "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None


def load_plan(path: Path | str) -> Plan:
    """The plan in `path`. The file is read every time; it is parsed again only when its text
    changed (a Plan is immutable, so the same one can be handed out again)."""
    path = Path(path)
    text = _read(path)
    key = str(path.resolve())
    cached = _PARSED.get(key)
    if cached is not None and cached[0] == text:
        return cached[1]
    plan = parse_plan(text, str(path))
    _PARSED[key] = (text, plan)
    return plan
