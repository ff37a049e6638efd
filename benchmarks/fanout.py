"""Time crossfk's fan-out over many databases, serial against parallel,
each database a fixed delay per round trip away.

    python benchmarks/fanout.py [--aliases 8,64] [--delays 0,1,5] [--repeat 7]
        [--rst] [--conn-max-age SECONDS|none] [--keep-databases]

For each number N of tenant aliases it spreads 5,000 orders of 1,000 users
over N databases (``benchmarks/fanapp``; the tenants alternate between the
two servers, the users are in "default"), and for each delay D times a
reverse prefetch over the 1,000 users, a reverse filter, a cascade delete
of 8 users (put back, untimed, after each run) and ``crossfk_check`` of the
orders, each fanned out serially (``CROSSFK_MAX_PARALLEL=1``) and in
parallel (the default, 8), and with every order in one alias: the
yardstick. Each run is one request: connections are opened as used and
released after it as ``CONN_MAX_AGE`` says (0 by default, as in Django).
Times are the median of --repeat interleaved rounds (each runs every cell
once) after a warm-up round that asserts the queries each database
receives: one per alias per level. Untimed runs at the largest delay count
the messages sent, the connections open at the peak and after each run, and
the peak memory Python allocated (tracemalloc).

Every alias is reached through ``benchmarks/latency_proxy.py``, one proxy
per server in a child process (its threads then take no turns at this
process's GIL), which holds each message to the server D ms: a query costs
D more, and so does opening a connection (one message with trust
authentication, ``sslmode=disable`` and the time zone set at connect).
The servers are those of ``run.py`` (CROSSFK_PG_HOST,
CROSSFK_PG_PORT_DEFAULT, CROSSFK_PG_PORT_SECONDARY, CROSSFK_PG_USER); the
databases, crossfk_fanbench_*, are created and, unless --keep-databases,
dropped at the end.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import django
from django.conf import settings

# This checkout's crossfk and benchmarks, not an installed copy: crossfk is
# imported only below this line (a script's sys.path starts at its folder).
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.fanapp import ONE_ALIAS, tenant_aliases  # noqa: E402
from benchmarks.run import format_table as plain_or_rst_table  # noqa: E402

HOST = os.environ.get("CROSSFK_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("CROSSFK_PG_USER", "postgres")
SERVER_PORTS = (
    int(os.environ.get("CROSSFK_PG_PORT_DEFAULT", "55432")),
    int(os.environ.get("CROSSFK_PG_PORT_SECONDARY", "55433")),
)
DATABASE_PREFIX = "crossfk_fanbench_"
PROXY_SCRIPT = Path(__file__).with_name("latency_proxy.py")
# The target: parallel over 8 aliases within 1.5x of one alias at 5 ms.
TARGET_ALIASES, TARGET_DELAY, TARGET_RATIO = 8, 5.0, 1.5
# Connections left free on each server for everyone else.
SPARE_CONNECTIONS = 20


# Proxies and databases -------------------------------------------------------


class ProxyProcess:
    """``latency_proxy.py`` in front of one server, in a child process."""

    def __init__(self, server_port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PROXY_SCRIPT), "--upstream", f"{HOST}:{server_port}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self.answer().split()[1])  # "port <number>"

    def answer(self, command: str | None = None) -> str:
        assert self.process.stdin and self.process.stdout
        if command is not None:
            self.process.stdin.write(f"{command}\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def set_delay(self, ms: float) -> None:
        self.answer(f"delay {ms}")

    def sent(self) -> int:
        """Messages forwarded to the server so far."""
        return int(self.answer("count").split()[1])

    def connections(self) -> tuple[int, int]:
        """Connections open now, and the most at once since last asked."""
        _, open_now, peak = self.answer("connections").split()
        return int(open_now), int(peak)

    def stop(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(timeout=10)


def server_of(alias: str) -> int:
    """Which server (0 or 1) holds ``alias``: the tenants alternate."""
    if alias == "default":
        return 0
    if alias == ONE_ALIAS:
        return 1
    return int(alias.removeprefix("tenant_")) % 2


def admin_connection(server: int):
    import psycopg

    return psycopg.connect(
        host=HOST,
        port=SERVER_PORTS[server],
        user=PG_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=3,
    )


def our_databases(admin) -> list[str]:
    query = "SELECT datname FROM pg_database WHERE datname LIKE %s"
    return [name for (name,) in admin.execute(query, [f"{DATABASE_PREFIX}%"])]


def create_databases(aliases: list[str]) -> None:
    for server in (0, 1):
        with admin_connection(server) as admin:
            existing = set(our_databases(admin))
            for alias in aliases:
                name = DATABASE_PREFIX + alias
                if server_of(alias) == server and name not in existing:
                    admin.execute(f'CREATE DATABASE "{name}"')


def drop_databases() -> None:
    for server in (0, 1):
        with admin_connection(server) as admin:
            for name in our_databases(admin):
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def connections_in_pg_stat_activity() -> int:
    """Connections to the benchmark's databases, as both servers see them."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE %s"
    total = 0
    for server in (0, 1):
        with admin_connection(server) as admin:
            total += admin.execute(query, [f"{DATABASE_PREFIX}%"]).fetchone()[0]
    return total


def free_connections() -> int:
    """The fewest connections either server can still open, less a spare."""
    query = (
        "SELECT current_setting('max_connections')::int - count(*) "
        "FROM pg_stat_activity WHERE backend_type = 'client backend'"
    )
    free = []
    for server in (0, 1):
        with admin_connection(server) as admin:
            free.append(admin.execute(query).fetchone()[0] - SPARE_CONNECTIONS)
    return min(free)


def kept_connections(tenant_count: int) -> int:
    """The most connections kept open on one server when CONN_MAX_AGE keeps
    them: each worker thread of the pool, and the caller's, may hold one to
    each alias there (its tenants, and default or the one alias)."""
    threads = 8 + 1  # CROSSFK_MAX_PARALLEL's default, and the caller
    return threads * (math.ceil(tenant_count / 2) + 1)


def setup_django(
    aliases: list[str], proxies: list[ProxyProcess], conn_max_age: int | None
) -> None:
    """Configure Django in code, every alias reached through its server's proxy."""
    settings.configure(
        DATABASES={
            alias: {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": DATABASE_PREFIX + alias,
                "USER": PG_USER,
                "HOST": HOST,
                "PORT": str(proxies[server_of(alias)].port),
                "CONN_MAX_AGE": conn_max_age,
                # Connecting is one message: no SSL request for the server
                # to refuse, and no SET TIME ZONE after it.
                "OPTIONS": {"sslmode": "disable", "options": "-c TimeZone=UTC"},
            }
            for alias in aliases
        },
        DATABASE_ROUTERS=["crossfk.routers.PartitionRouter"],
        INSTALLED_APPS=["crossfk", "benchmarks.fanapp"],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
    django.setup()


def migrate(every_tenant: list[str]) -> None:
    from django.core.management import call_command
    from django.db import connections

    from benchmarks.fanout_measurements import place_orders

    place_orders([*every_tenant, ONE_ALIAS])
    for alias in settings.DATABASES:
        call_command("migrate", database=alias, verbosity=0)
    connections.close_all()  # even those CONN_MAX_AGE would keep


# Measuring -------------------------------------------------------------------

CellKey = tuple[str, str]  # (operation, mode)


@dataclass
class Cell:
    """One operation in one mode, at one number of aliases and delay."""

    ms: float | None = None
    rows: int = 0
    queries: dict[str, int] = field(default_factory=dict)
    sent: int | None = None
    peak_connections: int | None = None
    connections_after: int | None = None
    peak_mib: float | None = None


def each_cell(tenants: list[str]) -> Iterator[tuple[CellKey, list[str]]]:
    """Every (operation, mode) in turn, the mode applied; with the aliases
    the orders are in."""
    from benchmarks.fanout_measurements import MODES, OPERATIONS

    for operation_key in OPERATIONS:
        for mode_key, mode in MODES.items():
            yield (operation_key, mode_key), mode.apply(tenants)


def end_request(operation_key: str, aliases: list[str]) -> None:
    """What follows each run, untimed: the request ends (connections are
    released as CONN_MAX_AGE says), and deleted rows come back."""
    from django.db import close_old_connections

    from benchmarks.fanout_measurements import OPERATIONS, put_back_deleted

    close_old_connections()
    if OPERATIONS[operation_key].is_delete:
        put_back_deleted(aliases)
        close_old_connections()


def warm_up(tenants: list[str]) -> dict[CellKey, Cell]:
    """Run every cell once, asserting the queries each database receives."""
    from benchmarks.fanout_measurements import OPERATIONS
    from crossfk.testing import assert_queries_per_db

    cells = {}
    for key, aliases in each_cell(tenants):
        operation = OPERATIONS[key[0]]
        expected = operation.queries(aliases)
        try:
            with assert_queries_per_db(expected) as captured:
                rows = operation.run()
        except AssertionError as error:
            raise SystemExit(f"{key}, {len(tenants)} tenants: {error}") from None
        queries = {alias: len(captured[alias]) for alias in expected}
        cells[key] = Cell(rows=rows, queries=queries)
        end_request(key[0], aliases)
    check_same_rows(cells)
    return cells


def check_same_rows(cells: dict[CellKey, Cell]) -> None:
    """Stop if one mode reached other rows than another: a bug, not a time."""
    answers: dict[str, dict[str, int]] = {}
    for (operation_key, mode_key), cell in cells.items():
        answers.setdefault(operation_key, {})[mode_key] = cell.rows
    for operation_key, by_mode in answers.items():
        if len(set(by_mode.values())) != 1:
            raise SystemExit(f"{operation_key}: the modes answer {by_mode}.")


def time_rounds(tenants: list[str], cells: dict[CellKey, Cell], repeat: int) -> None:
    """Each cell's median over ``repeat`` rounds. Each round runs every cell
    once, so a burst of load from elsewhere on the machine lands on all of
    them rather than on one."""
    from benchmarks.fanout_measurements import OPERATIONS

    samples: dict[CellKey, list[float]] = {key: [] for key in cells}
    for _ in range(repeat):
        for key, aliases in each_cell(tenants):
            run = OPERATIONS[key[0]].run
            gc.collect()  # so that one run does not pay for another's garbage
            started = time.perf_counter()
            run()
            samples[key].append(time.perf_counter() - started)
            end_request(key[0], aliases)
    for key, times in samples.items():
        cells[key].ms = statistics.median(times) * 1000


def probe(
    tenants: list[str],
    cells: dict[CellKey, Cell],
    proxies: list[ProxyProcess],
    delay: float,
) -> None:
    """Untimed runs of every cell: the messages sent to the servers, the
    connections open at the peak and once the run returned (the request not
    ended yet), and the peak memory Python allocated."""
    from django.db import close_old_connections

    from benchmarks.fanout_measurements import OPERATIONS

    # The last message's delay, and the server's backends exiting.
    settle = delay / 1000 + 0.2
    for key, aliases in each_cell(tenants):
        run, cell = OPERATIONS[key[0]].run, cells[key]
        time.sleep(settle)  # the previous run's connections closed
        sent_before = sum(proxy.sent() for proxy in proxies)
        for proxy in proxies:
            proxy.connections()  # the peak counts from here
        run()
        time.sleep(settle)
        # Each server's own peak, summed: exact when they coincide (serial
        # keeps every connection to the end), else an upper bound.
        cell.peak_connections = sum(proxy.connections()[1] for proxy in proxies)
        cell.connections_after = connections_in_pg_stat_activity()
        close_old_connections()
        time.sleep(settle)
        cell.sent = sum(proxy.sent() for proxy in proxies) - sent_before
        end_request(key[0], aliases)
        gc.collect()
        tracemalloc.start()
        run()
        cell.peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        end_request(key[0], aliases)


Results = dict[tuple[int, float], dict[CellKey, Cell]]


def run_all(args, every_tenant: list[str], proxies: list[ProxyProcess]):
    """Measure every (aliases, delay); probe each number of aliases at the
    largest delay. Returns the results, the probes, and what was skipped."""
    from benchmarks.fanout_measurements import load, place_orders

    results: Results = {}
    probed: dict[int, dict[CellKey, Cell]] = {}
    skipped = []
    for count in args.aliases:
        if args.conn_max_age != 0 and kept_connections(count) > free_connections():
            skipped.append(
                f"{count} aliases: CONN_MAX_AGE={args.conn_max_age} would keep up "
                f"to {kept_connections(count)} connections open on one server, "
                f"more than its max_connections leaves free (less "
                f"{SPARE_CONNECTIONS} spare): not run."
            )
            continue
        tenants = every_tenant[:count]
        for proxy in proxies:
            proxy.set_delay(0)
        place_orders(tenants)
        load(tenants, every_tenant)
        for delay in args.delays:
            print(f"{count} aliases, {delay:g} ms", file=sys.stderr, flush=True)
            for proxy in proxies:
                proxy.set_delay(delay)
            cells = warm_up(tenants)
            time_rounds(tenants, cells, args.repeat)
            results[count, delay] = cells
        delay = max(args.delays)
        for proxy in proxies:
            proxy.set_delay(delay)
        probe(tenants, results[count, delay], proxies, delay)
        probed[count] = results[count, delay]
    return results, probed, skipped


# Reporting -------------------------------------------------------------------


def format_table(headers: list[str], rows: list[list[str]], rst: bool) -> str:
    """``run.py``'s table. In RST, a blank first cell would make its row
    part of the one above: a backslash keeps it a row of its own, blank."""
    if rst:
        headers, *rows = [[row[0] or "\\", *row[1:]] for row in [headers, *rows]]
    return plain_or_rst_table(headers, rows, rst)


def labels(operation_key: str, mode_key: str, rst: bool) -> list[str]:
    """The two label columns: the operation (on its first row), the mode."""
    from benchmarks.fanout_measurements import MODES, OPERATIONS

    operation = OPERATIONS[operation_key]
    is_first = mode_key == next(iter(MODES))
    code = f"``{operation.code}``" if rst else operation.code
    return [f"{operation.label}: {code}" if is_first else "", MODES[mode_key].label]


def ms_text(ms: float) -> str:
    return f"{ms:,.{2 if ms < 10 else 1}f}"


def queries_text(queries: dict[str, int]) -> str:
    """Default's queries, then ``aliases x queries`` for the others, grouped."""
    others = Counter(count for alias, count in queries.items() if alias != "default")
    groups = " + ".join(f"{aliases} x {count}" for count, aliases in others.items())
    return f"{queries['default']} + {groups}"


def times_table(results: Results, rst: bool) -> str:
    from benchmarks.fanout_measurements import MODES, OPERATIONS

    rows = []
    for operation_key in OPERATIONS:
        for mode_key in MODES:
            times = [cells[operation_key, mode_key].ms for cells in results.values()]
            rows.append([*labels(operation_key, mode_key, rst), *map(ms_text, times)])
        for name, over, under in (
            ("parallel / one alias", "parallel", "one"),
            ("serial / parallel", "serial", "parallel"),
        ):
            ratios = [
                cells[operation_key, over].ms / cells[operation_key, under].ms
                for cells in results.values()
            ]
            rows.append(["", name, *(f"{ratio:.2f}x" for ratio in ratios)])
    headers = ["", "", *(f"{n} / {delay:g} ms" for n, delay in results)]
    return format_table(headers, rows, rst)


def per_aliases_table(
    by_aliases: dict[int, dict[CellKey, Cell]],
    columns: dict[str, Callable[[Cell], str]],
    rst: bool,
) -> str:
    """One row per cell; ``columns`` for each number of aliases."""
    from benchmarks.fanout_measurements import MODES, OPERATIONS

    rows = []
    for operation_key in OPERATIONS:
        for mode_key in MODES:
            row = labels(operation_key, mode_key, rst)
            for cells in by_aliases.values():
                cell = cells[operation_key, mode_key]
                row += [text(cell) for text in columns.values()]
            rows.append(row)
    headers = ["", ""] + [
        f"{count}: {name}" if name else f"{count} aliases"
        for count in by_aliases
        for name in columns
    ]
    return format_table(headers, rows, rst)


def verdicts(results: Results) -> list[str]:
    """The issue's targets: the time at 5 ms and 8 aliases, and the queries."""
    from benchmarks.fanout_measurements import OPERATIONS

    lines = []
    cells = results.get((TARGET_ALIASES, TARGET_DELAY))
    for operation_key, operation in OPERATIONS.items():
        name = f"{operation.label}, parallel over {TARGET_ALIASES} aliases"
        target = f"within {TARGET_RATIO}x of one alias at {TARGET_DELAY:g} ms"
        if cells is None:
            lines.append(f"- {name} {target}: not measured in this run")
            continue
        ratio = cells[operation_key, "parallel"].ms / cells[operation_key, "one"].ms
        verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        lines.append(f"- {name} {target}: {verdict} ({ratio:.2f}x)")
    return [*lines, queries_verdict(results)]


def queries_verdict(results: Results) -> str:
    """Whether each alias gets one query per level, from the counts asserted
    at the most aliases: for the delete, an alias that holds none of the
    deleted orders needs to be asked whether it does, before the delete's
    transactions and again under its lock, and nothing more."""
    from benchmarks.fanout_measurements import DELETED_USERS, rows_by_alias

    (count, _), cells = max(results.items(), key=lambda item: item[0])
    queries = cells["delete", "parallel"].queries
    tenants = [alias for alias in queries if alias != "default"]
    holding_none = set(tenants) - set(rows_by_alias(DELETED_USERS, tenants))
    most = max((queries[alias] for alias in holding_none), default=0)
    if not holding_none:
        delete = f"the cascade delete finds orders to delete in all {count} aliases"
    elif most > 2:
        delete = (
            f"MISSED by the cascade delete: {most} statements in each of the "
            f"{len(holding_none)} aliases that hold none of the deleted orders "
            f"(of {count})"
        )
    else:
        delete = (
            "met by the cascade delete in the aliases that hold none of its "
            "orders (whether they do, before and under the lock)"
        )
    return (
        "- one query per alias per level: met by the reverse prefetch and the "
        "reverse filter, and by crossfk_check (one per page, an empty one "
        f"only after a full one); {delete}"
    )


def report(results: Results, probed, skipped: list[str], args) -> str:
    from django.db import connections

    from benchmarks.fanout_measurements import (
        DANGLING_ORDERS,
        ORDERS_PER_USER,
        USERS,
    )

    version = ".".join(map(str, divmod(connections["default"].pg_version, 10000)))
    parts = [
        f"PostgreSQL {version}, two servers (:{SERVER_PORTS[0]} and "
        f":{SERVER_PORTS[1]}), each behind latency_proxy.py; {USERS:,} users, "
        f"{USERS * ORDERS_PER_USER:,} orders (+{DANGLING_ORDERS} dangling); "
        f"CONN_MAX_AGE={args.conn_max_age}.",
        *skipped,
    ]
    if results:
        parts += [
            f"Milliseconds, median of {args.repeat} interleaved rounds after a "
            "warm-up round; columns: tenant aliases / delay per round trip.",
            times_table(results, args.rst),
            "Queries per database (default + aliases x queries each; Django's "
            "capture counts BEGIN and COMMIT), asserted in the warm-up rounds:",
            per_aliases_table(
                {count: cells for (count, _), cells in results.items()},
                {"": lambda cell: queries_text(cell.queries)},
                args.rst,
            ),
            f"Untimed runs at {max(args.delays):g} ms: messages sent to the "
            "servers (each held for the delay); PostgreSQL connections open at "
            "the peak, and once the run returned, before the request ends; the "
            "peak MiB Python allocated:",
            per_aliases_table(
                probed,
                {
                    "sent": lambda cell: f"{cell.sent:,}",
                    "peak": lambda cell: str(cell.peak_connections),
                    "after": lambda cell: str(cell.connections_after),
                    "MiB": lambda cell: f"{cell.peak_mib:.1f}",
                },
                args.rst,
            ),
            "Targets:\n\n" + "\n".join(verdicts(results)),
        ]
    return "\n\n".join(parts)


# Command line ------------------------------------------------------------------


def numbers(text: str) -> list[float]:
    return [float(part) for part in text.split(",")]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--aliases",
        type=lambda text: [int(n) for n in numbers(text)],
        default=[8, 64],
        help="numbers of tenant aliases, comma-separated (default: 8,64)",
    )
    parser.add_argument(
        "--delays",
        type=numbers,
        default=[0.0, 1.0, 5.0],
        help="milliseconds per round trip, comma-separated (default: 0,1,5)",
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per cell")
    parser.add_argument("--rst", action="store_true", help="print RST tables")
    parser.add_argument(
        "--conn-max-age",
        type=lambda text: None if text == "none" else int(text),
        default=0,
        help="CONN_MAX_AGE of every alias (default 0, as in Django: released "
        "after each request; 'none' keeps them open)",
    )
    parser.add_argument(
        "--keep-databases",
        action="store_true",
        help="leave the crossfk_fanbench_* databases for the next run",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    every_tenant = tenant_aliases(max(args.aliases))
    aliases = ["default", ONE_ALIAS, *every_tenant]
    create_databases(aliases)
    proxies = [ProxyProcess(port) for port in SERVER_PORTS]
    try:
        setup_django(aliases, proxies, args.conn_max_age)
        migrate(every_tenant)
        results, probed, skipped = run_all(args, every_tenant, proxies)
        print(
            f"Python {platform.python_version()}, Django {django.get_version()}, "
            f"{os.cpu_count()} CPUs, {platform.machine()}, load average "
            f"{os.getloadavg()[0]:.2f} at the end\n"
        )
        print(report(results, probed, skipped, args))
    finally:
        from django.db import connections

        from crossfk.parallel import close_worker_connections

        close_worker_connections()
        connections.close_all()
        for proxy in proxies:
            proxy.stop()
        if not args.keep_databases:
            drop_databases()
    print(f"\nTotal time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
