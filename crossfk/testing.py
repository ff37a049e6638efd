"""Query counts per database, for tests, the demo and the benchmarks, and
the guardrails of ``crossfk.guardrails``.

They count the queries of ``crossfk.parallel``'s worker threads too: a
fan-out's count is the same whether it ran at once or one database after
the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext

from crossfk.guardrails import (
    CrossDatabaseError,
    CrossDatabaseGuardMixin,
    allow_cross_database,
    allowances,
    guard_cross_database,
)
from crossfk.parallel import around_worker_calls
from crossfk.placement import working_aliases

__all__ = [
    "CaptureQueries",
    "CrossDatabaseError",
    "CrossDatabaseGuardMixin",
    "allow_cross_database",
    "allowances",
    "assert_queries_per_db",
    "capture_queries_per_db",
    "guard_cross_database",
]


class CaptureQueries(CaptureQueriesContext):
    """Django's capture of one database's queries, and those that
    ``crossfk.parallel``'s workers ran there meanwhile."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self.from_workers: list[dict[str, str]] = []

    @property
    def captured_queries(self) -> list[dict[str, str]]:
        return super().captured_queries + self.from_workers

    @contextmanager
    def in_worker(self) -> Iterator[None]:
        """Record what this thread's connection to the database runs."""

        def record(
            execute: Callable[..., Any],
            sql: str,
            params: Any,
            many: bool,
            context: dict[str, Any],
        ) -> Any:
            start = time.monotonic()
            try:
                return execute(sql, params, many, context)
            finally:
                ops = context["connection"].ops
                executed = ops.last_executed_query(context["cursor"], sql, params)
                self.from_workers.append(
                    {"sql": executed, "time": f"{time.monotonic() - start:.3f}"}
                )

        with connections[self.connection.alias].execute_wrapper(record):
            yield


@contextmanager
def capture_queries_per_db(
    aliases: Iterable[str] | None = None,
) -> Iterator[dict[str, CaptureQueriesContext]]:
    """Capture the queries of each alias (by default, of every database a
    model is pinned to, and the ``crossfk.partition()`` in effect).

    Yields ``{alias: CaptureQueriesContext}``; ``len()`` of each is its
    number of queries once the block has run.
    """
    with ExitStack() as stack:
        captures = {
            alias: stack.enter_context(CaptureQueries(connections[alias]))
            for alias in (working_aliases() if aliases is None else aliases)
        }

        def capture_in_worker(alias: str) -> AbstractContextManager[Any]:
            # Connected first: what Django runs to set a connection up (the
            # server's version and isolation level on MariaDB) is not the
            # call's, and the caller's connections were set up already.
            connections[alias].ensure_connection()
            inner = ExitStack()
            for capture in captures.values():
                inner.enter_context(capture.in_worker())
            return inner

        token = around_worker_calls.set((*around_worker_calls.get(), capture_in_worker))
        try:
            yield dict(captures)
        finally:
            around_worker_calls.reset(token)


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
