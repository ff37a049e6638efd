"""``crossfk_cleanup``: apply deferred referential actions, or report the backlog.

Run it from cron or any scheduler (on Django 6.0+ the task of
``crossfk.tasks`` does the same work). ``--status`` is for monitoring: it
exits with status 1 when the backlog passes ``--max-pending`` or
``--max-age``.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from crossfk.cleanup import (
    DEFAULT_BATCH_SIZE,
    LEASE,
    backlog,
    clean_up,
    outbox_aliases,
)
from crossfk.management import check_batches_and_databases

# With --loop, the pause after a pass that found the outbox empty.
LOOP_PAUSE = 1.0


class Command(BaseCommand):
    help = (
        "Apply the deferred on_delete actions (DEFERRED_CASCADE, "
        "DEFERRED_SET_NULL, DEFERRED_SET) recorded by deletes, in batches; "
        "with --status, report the backlog."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Outbox rows claimed, and referencing rows changed, per batch "
            f"(default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--time-limit",
            type=float,
            metavar="SECONDS",
            help="Start no batch after this many seconds (default: no limit).",
        )
        parser.add_argument(
            "--loop",
            action="store_true",
            help="Keep going when the outbox is empty, until the time limit.",
        )
        parser.add_argument(
            "--database",
            action="append",
            dest="databases",
            metavar="ALIAS",
            help="This database's outbox only (repeatable).",
        )
        parser.add_argument(
            "--status",
            action="store_true",
            help="Print the pending rows per relation and the oldest's age; "
            "apply nothing.",
        )
        parser.add_argument(
            "--max-pending",
            type=int,
            metavar="N",
            help="With --status: exit with status 1 above N pending rows.",
        )
        parser.add_argument(
            "--max-age",
            type=float,
            metavar="SECONDS",
            help="With --status: exit with status 1 when a pending row is older.",
        )

    def handle(
        self,
        *args: Any,
        batch_size: int,
        time_limit: float | None,
        loop: bool,
        databases: list[str] | None,
        status: bool,
        max_pending: int | None,
        max_age: float | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        check_batches_and_databases(batch_size, databases)
        if not status and (max_pending is not None or max_age is not None):
            raise CommandError("--max-pending and --max-age go with --status.")
        aliases = databases or outbox_aliases()
        if status:
            self.report(aliases, max_pending, max_age)
            return
        failures = self.drain(aliases, batch_size, time_limit, loop, verbosity)
        if failures:
            raise CommandError(
                f"{failures} deferred action(s) could not be applied; they are "
                f"retried once their claim lapses ({LEASE.total_seconds():.0f} s). "
                f"Fix the cause above, then run crossfk_cleanup again.",
                returncode=1,
            )

    def drain(
        self,
        aliases: list[str],
        batch_size: int,
        time_limit: float | None,
        loop: bool,
        verbosity: int,
    ) -> int:
        """Apply the outbox, once or (``loop``) until the time limit; report
        each pass that did something; return how many actions failed."""
        deadline = None if time_limit is None else time.monotonic() + time_limit
        failures = 0
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            progress = clean_up(aliases, batch_size=batch_size, time_limit=left)
            if verbosity >= 1 and (progress.batches or not loop):
                rows = ", ".join(
                    f"{count} {label}" for label, count in sorted(progress.rows.items())
                )
                self.stdout.write(
                    f"{progress.finished} outbox row(s) done in {progress.batches} "
                    f"batch(es); rows changed: {rows or 'none'}."
                )
            for failure in progress.failures:
                self.stderr.write(f"Left pending: {failure}")
            failures += len(progress.failures)
            if progress.timed_out and verbosity >= 1:
                self.stdout.write(
                    "Time limit reached; the rest is left for the next run."
                )
            if not loop or progress.timed_out:
                return failures
            if not progress.batches:
                time.sleep(LOOP_PAUSE)

    def report(
        self, aliases: list[str], max_pending: int | None, max_age: float | None
    ) -> None:
        now = timezone.now()
        rows = backlog(aliases)
        if not rows:
            self.stdout.write("No deferred action is pending.")
        for row in rows:
            self.stdout.write(
                f"{row.relation} in {row.alias!r}: {row.pending} pending, "
                f"oldest {row.age(now):.0f} s"
            )
        total = sum(row.pending for row in rows)
        oldest = max((row.age(now) for row in rows), default=0.0)
        over = []
        if max_pending is not None and total > max_pending:
            over.append(f"{total} pending rows, more than --max-pending {max_pending}")
        if max_age is not None and oldest > max_age:
            over.append(
                f"the oldest pending for {oldest:.0f} s, more than --max-age "
                f"{max_age:g}"
            )
        if over:
            raise CommandError(
                f"Deferred actions are falling behind: {'; '.join(over)}. Run "
                f"crossfk_cleanup (more often, or with more workers).",
                returncode=1,
            )
