"""The pytest plugin: ``--crossfk-guard`` (or ``crossfk_guard = true`` in the
ini file) runs each test's call inside ``crossfk.testing.guard_cross_database()``.

Only the call: fixtures (pytest-django's database set-up, its transaction
around the test, data a fixture writes) run unguarded, as a ``TestCase``'s
own set-up does. A test marked ``@pytest.mark.allow_cross_database(reason=...)``
runs inside ``allow_cross_database()``. At the end the allowances used are
listed with their counts.

Registered as the ``crossfk`` entry point of ``pytest11``; it imports
nothing of Django until a test runs.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

MARKER = "allow_cross_database"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crossfk")
    group.addoption(
        "--crossfk-guard",
        action="store_true",
        default=None,
        dest="crossfk_guard",
        help="run each test inside crossfk.testing.guard_cross_database()",
    )
    group.addoption(
        "--no-crossfk-guard",
        action="store_false",
        dest="crossfk_guard",
        help="do not, even if the ini file's crossfk_guard says so",
    )
    parser.addini(
        "crossfk_guard",
        type="bool",  # type: ignore[maybe-unrecognized-str-typeform]
        default=False,
        help="run each test inside crossfk.testing.guard_cross_database()",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f'{MARKER}(reason="..."): run the test inside '
        f"crossfk.testing.allow_cross_database(reason=...)",
    )


def guard_enabled(config: pytest.Config) -> bool:
    """Whether this run guards its tests: the option, else the ini file."""
    option = config.getoption("crossfk_guard")
    return bool(config.getini("crossfk_guard") if option is None else option)


def allowance_of(item: pytest.Item) -> Any:
    """The test's ``allow_cross_database()``, if it is marked with one."""
    for node, marker in item.iter_markers_with_node(MARKER):
        from crossfk.guardrails import allow_cross_database

        # Where the mark is: the test, its class or its module.
        return allow_cross_database(
            reason=marker.kwargs.get("reason", ""), location=node.nodeid
        )
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    if not guard_enabled(item.config):
        return (yield)
    from crossfk.guardrails import guard_cross_database

    allowance = allowance_of(item)
    with guard_cross_database():
        if allowance is None:
            return (yield)
        with allowance:
            return (yield)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not guard_enabled(config):
        return
    from crossfk.guardrails import allowances, iter_summary

    used = allowances()
    terminalreporter.write_sep(
        "=",
        f"crossfk: {len(used)} cross-database allowances, entered "
        f"{sum(a.uses for a in used)} times",
    )
    for line in iter_summary():
        terminalreporter.write_line(line)
