"""Time ``crossfk_check`` and its peak memory on large tables.

    python benchmarks/check_scan.py [--sizes 100000,1000000]
        [--backend sqlite|postgresql]

For each size N it stores N links over N/10 posts (SQLite files or the two
PostgreSQL servers of ``run.py``), removes 1% of the posts behind crossfk's
back, and runs ``crossfk_check`` on ``Link.post``. Peak memory is what
Python allocated during the scan (tracemalloc): it should not grow with N.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
import tracemalloc
from io import StringIO

from run import postgresql_databases, setup_django, sqlite_databases, use_databases

BATCH = 50_000


def load(size: int) -> None:
    """N links over N/10 posts, written with plain INSERTs for speed."""
    from django.core.management import call_command
    from django.db import connections, transaction

    from benchmarks.benchapp.models import Link, Post

    call_command("flush", database="default", interactive=False, verbosity=0)
    call_command("flush", database="secondary", interactive=False, verbosity=0)
    posts = size // 10
    for alias, table, rows in (
        (
            "default",
            Post._meta.db_table,
            ((n, f"post {n}") for n in range(1, posts + 1)),
        ),
        (
            "secondary",
            Link._meta.db_table,
            ((n, f"https://{n}.example", n % posts + 1) for n in range(1, size + 1)),
        ),
    ):
        connection = connections[alias]
        columns = "(id, title)" if alias == "default" else "(id, url, post_id)"
        marks = ", ".join(["%s"] * (2 if alias == "default" else 3))
        sql = (
            f"INSERT INTO {connection.ops.quote_name(table)} {columns} VALUES ({marks})"
        )
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            batch = []
            for row in rows:
                batch.append(row)
                if len(batch) == BATCH:
                    cursor.executemany(sql, batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
    with connections["default"].cursor() as cursor:  # 1% of posts vanish.
        cursor.execute(
            f"DELETE FROM {connections['default'].ops.quote_name(Post._meta.db_table)} "
            f"WHERE id %% %s = 0",
            [100],
        )


def scan() -> tuple[float, float, str]:
    """Seconds, peak MiB allocated, and the command's report."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    stdout = StringIO()
    tracemalloc.start()
    started = time.perf_counter()
    with contextlib.suppress(CommandError):  # exits non-zero: 1% dangle
        call_command("crossfk_check", "benchapp.Link.post", stdout=stdout)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, stdout.getvalue().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    setup_django()
    with tempfile.TemporaryDirectory() as directory:
        if args.backend == "sqlite":
            use_databases(sqlite_databases(directory))
        else:
            use_databases(postgresql_databases())
        print(f"crossfk_check on {args.backend}, batch size 2000")
        print(f"{'links':>10}  {'seconds':>8}  {'peak MiB':>8}  report")
        for size in map(int, args.sizes.split(",")):
            load(size)
            seconds, peak, output = scan()
            print(f"{size:>10,}  {seconds:>8.1f}  {peak:>8.1f}  {output}")


if __name__ == "__main__":
    main()
