"""Query counts per database, for tests, the demo and the benchmarks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager

from django.db import connections
from django.test.utils import CaptureQueriesContext


@contextmanager
def capture_queries_per_db(
    aliases: Iterable[str] | None = None,
) -> Iterator[dict[str, CaptureQueriesContext]]:
    """Capture the queries of each alias (every alias by default).

    Yields ``{alias: CaptureQueriesContext}``; ``len()`` of each is its
    number of queries once the block has run.
    """
    with ExitStack() as stack:
        yield {
            alias: stack.enter_context(CaptureQueriesContext(connections[alias]))
            for alias in (connections if aliases is None else aliases)
        }


@contextmanager
def assert_queries_per_db(
    expected: Mapping[str, int],
) -> Iterator[dict[str, CaptureQueriesContext]]:
    """Fail unless each named alias ran exactly its expected number of queries.

    Aliases not named are not checked. The failure lists every captured
    statement of each alias that missed, so a stray N+1 shows itself.
    Yields the captured queries by alias.
    """
    with capture_queries_per_db(expected) as captured:
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
