"""Time crossfk's cross-database relations against Django's same-database ones.

    python benchmarks/run.py [--sizes 1000,10000,100000]
        [--backend sqlite|postgresql|both] [--repeat 5] [--rst] [--profile NAME]

For each backend and size N, it loads N links over N/10 posts into both pairs
of ``benchmarks/benchapp`` (``Link`` -> ``Post`` across two databases,
``SameLink`` -> ``SamePost`` in one) and times the same reads on each: the
median of --repeat rounds (each runs every read once) after a warm-up round
that also counts the queries each database receives. Everything runs in this
one process, so the two sides share the interpreter, the driver and the
machine.

SQLite uses two files in a temporary directory. PostgreSQL uses two servers
(CROSSFK_PG_HOST, CROSSFK_PG_PORT_DEFAULT, CROSSFK_PG_PORT_SECONDARY; default
127.0.0.1:55432 and :55433, user CROSSFK_PG_USER or postgres) and creates a
database named crossfk_bench on each when it is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import django
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connections

# This checkout's crossfk and benchmarks, not an installed copy: crossfk is
# imported only below this line (a script's sys.path starts at its folder).
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

ALIASES = ("default", "secondary")
PG_DATABASE = "crossfk_bench"
PG_PORTS = {"default": "55432", "secondary": "55433"}


# Databases ---------------------------------------------------------------------


def setup_django(app: str = "benchmarks.benchapp", **more_settings: object) -> None:
    """Configure Django in code, with the benchmark's ``app``: the benchmark
    needs no project around it."""
    settings.configure(
        # Placeholders until use_databases() points the aliases at a backend.
        DATABASES={alias: {"ENGINE": "django.db.backends.dummy"} for alias in ALIASES},
        DATABASE_ROUTERS=["crossfk.routers.PartitionRouter"],
        INSTALLED_APPS=["crossfk", app],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
        **more_settings,
    )
    django.setup()


def use_databases(databases: dict[str, dict]) -> None:
    """Point "default" and "secondary" at one backend's databases.

    The models are pinned to alias names, so comparing backends in one
    process means re-pointing the aliases and letting Django open new
    connections from the new settings (``connections.settings`` is the
    ``DATABASES`` dict itself).
    """
    connections.close_all()
    for alias, database in connections.configure_settings(databases).items():
        connections.settings[alias] = database
        with contextlib.suppress(AttributeError):  # never connected
            del connections[alias]
    for alias in ALIASES:
        call_command("migrate", database=alias, verbosity=0)


def sqlite_databases(directory: str) -> dict[str, dict]:
    return {
        alias: {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(Path(directory, f"{alias}.sqlite3")),
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF"
            },
        }
        for alias in ALIASES
    }


def postgresql_databases(name: str = PG_DATABASE) -> dict[str, dict] | None:
    """The database ``name`` on each server, created if missing.

    None, with the reason printed, when a server cannot be reached.
    """
    try:
        import psycopg
    except ImportError:
        print("PostgreSQL: psycopg is not installed.")
        return None
    host = os.environ.get("CROSSFK_PG_HOST", "127.0.0.1")
    user = os.environ.get("CROSSFK_PG_USER", "postgres")
    databases = {}
    for alias in ALIASES:
        port = os.environ.get(f"CROSSFK_PG_PORT_{alias.upper()}", PG_PORTS[alias])
        server = {"host": host, "port": port, "user": user, "connect_timeout": 3}
        try:
            with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
                query = "SELECT 1 FROM pg_database WHERE datname = %s"
                if not admin.execute(query, [name]).fetchone():
                    admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as error:
            reason = str(error).splitlines()[0]
            print(f"PostgreSQL on {host}:{port} is not reachable: {reason}")
            return None
        databases[alias] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": user,
            "HOST": host,
            "PORT": port,
        }
    return databases


def describe_backend() -> str:
    connection = connections["default"]
    if connection.vendor == "postgresql":
        ports = " and ".join(
            f":{connections[alias].settings_dict['PORT']}" for alias in ALIASES
        )
        version = ".".join(map(str, divmod(connection.pg_version, 10000)))
        return f"PostgreSQL {version}, two servers ({ports})"
    version = ".".join(map(str, connection.Database.sqlite_version_info))
    return f"SQLite {version}, two files (WAL, synchronous=OFF)"


# Measuring ---------------------------------------------------------------------


@dataclass
class Cell:
    """One measurement at one size: median milliseconds and queries per alias."""

    ms: float | None = None
    queries: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    error: str | None = None
    is_scaled: bool = False


def read_counting_queries(read) -> tuple[int, dict[str, int]]:
    from crossfk.testing import capture_queries_per_db

    with capture_queries_per_db(ALIASES) as captured:
        rows = read()
    return rows, {alias: len(context) for alias, context in captured.items()}


def measure_all(measurements: dict, size: int, repeat: int) -> dict[str, Cell]:
    """Each read's median time over ``repeat`` rounds, after a warm-up round.

    The warm-up also counts queries. A database error there (Django's own
    prefetch on SQLite past ~1000 targets) is a finding, so it becomes the
    cell's text instead of ending the run. Each round runs every read once,
    so a burst of load from elsewhere on the machine lands on both sides of
    a ratio rather than on one.
    """
    cells, samples = {}, {}
    for key, measurement in measurements.items():
        try:
            rows, queries = read_counting_queries(measurement.read)
        except DatabaseError as error:
            cells[key] = Cell(error=str(error).splitlines()[0])
        else:
            cells[key] = Cell(queries=queries, rows=rows)
            samples[key] = []
    for _ in range(repeat):
        for key, times in samples.items():
            gc.collect()  # so one read does not pay for another's garbage
            started = time.perf_counter()
            measurements[key].read()
            times.append(time.perf_counter() - started)
    for key, times in samples.items():
        scale = size / min(size, measurements[key].max_links or size)
        cells[key].ms = statistics.median(times) * 1000 * scale
        cells[key].is_scaled = scale != 1
    return cells


def profile(measurement, heading: str) -> None:
    """Print cProfile's top 15 functions by cumulative time for one run."""
    profiler = cProfile.Profile()
    profiler.runcall(measurement.read)
    output = io.StringIO()
    pstats.Stats(profiler, stream=output).sort_stats("cumulative").print_stats(15)
    print(f"\nProfile: {heading}\n{output.getvalue()}")


def check_same_rows(size: int, cells: dict[str, Cell]) -> None:
    """Stop if crossfk and Django reached different rows: that is a bug, not a time."""
    from benchmarks.measurements import RATIOS

    for ratio in RATIOS:
        crossfk, django_ = cells[ratio.crossfk], cells[ratio.django]
        if not (crossfk.error or django_.error) and crossfk.rows != django_.rows:
            raise SystemExit(
                f"N={size}: {ratio.crossfk} read {crossfk.rows} rows but "
                f"{ratio.django} read {django_.rows}."
            )


def run_backend(sizes, repeat, profile_key=None) -> dict[int, dict[str, Cell]]:
    """Load each size and measure every read on the current databases."""
    from benchmarks.measurements import MEASUREMENTS, load

    results = {}
    for size in sizes:
        started = time.perf_counter()
        load(size)
        print(
            f"  N={size:,}: loaded in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        results[size] = measure_all(MEASUREMENTS, size, repeat)
        check_same_rows(size, results[size])
        if profile_key:
            profile(
                MEASUREMENTS[profile_key],
                f"{profile_key}, N={size:,}, {describe_backend()}",
            )
    return results


# Reporting ---------------------------------------------------------------------


def format_table(headers: list[str], rows: list[list[str]], rst: bool) -> str:
    """A plain-text table, or an RST simple table ready for docs/performance.rst.

    The first two columns are labels, the others figures.
    """
    widths = [
        max(len(row[column]) for row in [headers, *rows])
        for column in range(len(headers))
    ]
    rule = "  ".join(("=" if rst else "-") * width for width in widths)

    def line(cells):
        aligned = [
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(aligned).rstrip()

    lines = [line(headers), rule, *map(line, rows)]
    return "\n".join([rule, *lines, rule] if rst else lines)


def time_text(cell: Cell) -> str:
    if cell.error:
        return f"fails: {cell.error}"
    # Two decimals under 10 ms: a fixed cost of a tenth of a millisecond
    # (a filter's second query at 10^3 rows) must show.
    digits = 2 if cell.ms < 10 else 1
    return f"{'~' if cell.is_scaled else ''}{cell.ms:,.{digits}f}"


def ratio_text(ratio, size: int, cells: dict[str, Cell]) -> tuple[str, str | None]:
    """The ratio's cell, and a verdict where the project promises a target."""
    crossfk, django_ = cells[ratio.crossfk], cells[ratio.django]
    applies = ratio.target is not None and size >= ratio.target_from_size
    failed = [
        f"{side} fails ({cell.error})"
        for side, cell in (("crossfk", crossfk), ("Django", django_))
        if cell.error
    ]
    if failed:
        return "n/a", f"n/a, {' and '.join(failed)}" if applies else None
    value = crossfk.ms / django_.ms
    if not applies:
        return f"{value:.2f}x", None
    verdict = "met" if value <= ratio.target else "MISSED"
    return f"{value:.2f}x {verdict}", f"{verdict} ({value:.2f}x)"


def queries_text(cell: Cell) -> str:
    return "-" if cell.error else " / ".join(map(str, cell.queries.values()))


def report(
    title: str, results: dict[int, dict[str, Cell]], repeat: int, rst: bool
) -> str:
    """One backend's timings, query counts and verdicts on the targets."""
    from benchmarks.measurements import MEASUREMENTS, NAIVE_LINKS, RATIOS

    sizes = list(results)
    size_headers = [f"N={size:,}" for size in sizes]
    time_rows, query_rows = [], []
    for key, measurement in MEASUREMENTS.items():
        cells = [results[size][key] for size in sizes]
        label = [
            measurement.side,
            f"``{measurement.code}``" if rst else measurement.code,
        ]
        time_rows.append([*label, *map(time_text, cells)])
        query_rows.append([*label, *map(queries_text, cells)])
    verdicts = []
    for ratio in RATIOS:
        texts = [ratio_text(ratio, size, results[size]) for size in sizes]
        target = f" (target <= {ratio.target}x)" if ratio.target else ""
        time_rows.append(["ratio", ratio.label + target, *(text for text, _ in texts)])
        verdicts += [
            f"- {ratio.label} within {ratio.target}x at N={size:,}: {verdict}"
            for size, (_, verdict) in zip(sizes, texts, strict=True)
            if verdict
        ]
    return "\n\n".join(
        [
            f"{title}\nMilliseconds, median of {repeat} interleaved rounds after "
            f"a warm-up round (~: timed on the first {NAIVE_LINKS:,} links, "
            "scaled to N).",
            format_table(["", "read", *size_headers], time_rows, rst),
            "Queries per database (default / secondary), counted in the warm-up round:",
            format_table(["", "read", *size_headers], query_rows, rst),
            "Targets:\n\n" + "\n".join(verdicts),
        ]
    )


# Command line ------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[1000, 10_000, 100_000],
        help="numbers of links, comma-separated (default: 1000,10000,100000)",
    )
    parser.add_argument(
        "--backend", choices=["sqlite", "postgresql", "both"], default="both"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per cell")
    parser.add_argument("--rst", action="store_true", help="print RST tables")
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="also print a cProfile of one read per size (prefetch_cross, naive, ...)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    setup_django()
    from benchmarks.measurements import MEASUREMENTS

    if args.profile and args.profile not in MEASUREMENTS:
        raise SystemExit(f"--profile: choose one of {', '.join(MEASUREMENTS)}.")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    import crossfk

    reports = [
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, crossfk from "
        f"{Path(crossfk.__file__).parent.parent}"
    ]
    with tempfile.TemporaryDirectory(prefix="crossfk-bench-") as directory:
        for backend in backends:
            if backend == "sqlite":
                databases = sqlite_databases(directory)
            else:
                databases = postgresql_databases()
                if databases is None:
                    if args.backend == "both":
                        print("Running SQLite only.")
                        continue
                    return 1
            use_databases(databases)
            title = describe_backend()
            print(f"{title}:", file=sys.stderr)
            results = run_backend(args.sizes, args.repeat, args.profile)
            reports.append(report(title, results, args.repeat, args.rst))
        connections.close_all()
    print("\n\n".join(reports))
    print(f"\nTotal time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
