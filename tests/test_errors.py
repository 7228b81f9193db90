"""One error hierarchy: every exception class kehoach defines is a KehoachError of one meaning
(or the base itself, a bug), and each meaning has its status and its title in both languages."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import approvals
import flows
import notifications
import service
from approvals.errors import MEANINGS, KehoachError
from approvals.i18n import catalogue
from service.web import MESSAGES


def _defined_exceptions() -> list[type[BaseException]]:
    found = []
    for package in (approvals, notifications, flows, service):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" in info.name or info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            found += [
                obj
                for _, obj in inspect.getmembers(module, inspect.isclass)
                if issubclass(obj, BaseException) and obj.__module__ == module.__name__
            ]
    return found


def test_every_exception_kehoach_defines_has_one_meaning():
    defined = _defined_exceptions()
    assert len(defined) >= 20  # the walk found the project's classes
    outside = [cls.__qualname__ for cls in defined if not issubclass(cls, KehoachError)]
    assert outside == []
    several = [cls.__qualname__ for cls in defined if sum(issubclass(cls, m) for m in MEANINGS) > 1]
    assert several == []


def test_each_meaning_has_a_status_and_a_title_in_both_languages():
    messages = catalogue(MESSAGES)
    assert sorted(m.status for m in MEANINGS) == [404, 404, 409, 422, 422, 503]
    kinds = [m.kind for m in (KehoachError, *MEANINGS)]  # what the API's 422 answers name as `type`
    assert len(set(kinds)) == len(kinds) and all(k.isidentifier() and k.islower() for k in kinds), kinds
    for meaning in (KehoachError, *MEANINGS):
        vi, en = messages.text(meaning.key, "vi"), messages.text(meaning.key, "en")
        assert vi and en and vi != en, meaning
