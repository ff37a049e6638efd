"""Count the queries each database runs, for the demo's report and pages."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from django.db import connections
from django.test.utils import CaptureQueriesContext


@contextmanager
def count_queries() -> Iterator[dict[str, int]]:
    """Yield a dict that holds, once the block exits, the queries per alias."""
    counts = {}
    with ExitStack() as stack:
        captured = {
            alias: stack.enter_context(CaptureQueriesContext(connections[alias]))
            for alias in connections
        }
        yield counts
    counts.update((alias, len(context)) for alias, context in captured.items())
