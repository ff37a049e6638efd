"""Test helpers: query counts per database."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

from django.db import connections
from django.test.utils import CaptureQueriesContext


@contextmanager
def assert_queries_per_db(expected: Mapping[str, int]) -> Iterator[dict]:
    """Fail unless each named alias ran exactly its expected number of queries.

    Aliases not named are not checked. The failure lists every captured
    statement of each alias that missed, so a stray N+1 shows itself.
    Yields the captured queries by alias.
    """
    with ExitStack() as stack:
        captured = {
            alias: stack.enter_context(CaptureQueriesContext(connections[alias]))
            for alias in expected
        }
        yield captured
    failures = []
    for alias, count in expected.items():
        queries = captured[alias].captured_queries
        if len(queries) != count:
            statements = "\n".join(
                f"  {number}. {query['sql']}"
                for number, query in enumerate(queries, start=1)
            )
            failures.append(
                f"{len(queries)} queries on {alias!r}, expected {count}:\n{statements}"
            )
    if failures:
        raise AssertionError("\n".join(failures))
