"""Count the queries each database runs, for the demo's report and pages."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from crossfk.testing import capture_queries_per_db


@contextmanager
def count_queries(aliases: Iterable[str] | None = None) -> Iterator[dict[str, int]]:
    """Yield a dict that holds, once the block exits, the queries per alias."""
    counts = {}
    with capture_queries_per_db(aliases) as captured:
        yield counts
    counts.update((alias, len(context)) for alias, context in captured.items())
