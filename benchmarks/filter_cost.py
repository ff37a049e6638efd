"""Time the fixed cost of a filter across the relation, piece by piece.

    python benchmarks/filter_cost.py [--backend sqlite|postgresql] [--rounds 15]

At 10^3 links (``run.py``'s data), the filter's cost over Django's JOIN is
mostly fixed: building the split filter, compiling the second query, and
running it on the other database. Each row is the median of --rounds
interleaved rounds, each the best of 3 runs of 50 calls, in microseconds:

- the whole read, crossfk's and Django's JOIN over one database;
- building the queryset (no query yet), both;
- building it and compiling the query that reads the target's ids.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import timeit
from collections.abc import Callable

from run import postgresql_databases, setup_django, sqlite_databases, use_databases

SIZE = 1000
PREFIX = "3-"


def measurements() -> dict[str, Callable[[], object]]:
    from benchmarks import measurements as measured
    from benchmarks.benchapp.models import Link, SameLink

    def build_cross() -> object:
        return Link.objects.filter(post__title__startswith=PREFIX)

    def build_join() -> object:
        return SameLink.objects.filter(post__title__startswith=PREFIX)

    def build_and_compile_target_query() -> object:
        lookup = build_cross().query.where.children[0]
        ids = lookup.rhs.values  # the IdSet's source: the target's ids
        return ids.query.get_compiler(ids.using).as_sql()

    return {
        "crossfk filter, whole read": measured.crossfk_filter,
        "Django JOIN, whole read": measured.django_filter,
        "crossfk, building the filter": build_cross,
        "Django, building the filter": build_join,
        "crossfk, building + compiling the ids query": build_and_compile_target_query,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    setup_django()
    if args.backend == "sqlite":
        use_databases(sqlite_databases(tempfile.mkdtemp()))
    else:
        databases = postgresql_databases()
        if databases is None:
            raise SystemExit("No PostgreSQL servers (see run.py).")
        use_databases(databases)
    from benchmarks import measurements as measured

    measured.load(SIZE)
    reads = measurements()
    for read in reads.values():
        read()  # warm caches
    timings: dict[str, list[float]] = {name: [] for name in reads}
    for _ in range(args.rounds):
        for name, read in reads.items():
            best = min(timeit.repeat(read, number=50, repeat=3))
            timings[name].append(best / 50 * 1e6)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"{SIZE:,} links, {args.backend}, median of {args.rounds} rounds (µs):")
    for name, median in medians.items():
        print(f"  {name:45} {median:8.1f}")
    over = medians["crossfk filter, whole read"] - medians["Django JOIN, whole read"]
    print(f"  {'crossfk over the JOIN':45} {over:8.1f}")


if __name__ == "__main__":
    main()
