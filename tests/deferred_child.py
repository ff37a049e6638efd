"""Worker processes for tests/test_deferred_workers.py. Not a test module.

``python -m tests.deferred_child`` sets Django up once, then forks a fresh
worker for each request it reads on stdin, one JSON object a line, and
answers each with one JSON line on stdout:

- ``{"run": SCENARIO, "crash_at": N}``: one worker runs SCENARIO and sends
  itself SIGKILL at its N-th kill point, leaving the databases as a crash
  there would. Answers ``{"killed_at": "before DELETE FROM ..."}``, or
  ``{"killed_at": null}`` when the run has fewer kill points than N.
- ``{"run": SCENARIO, "workers": K}``: K workers run SCENARIO at once.
  Answers ``{"progress": [...]}``, each worker's ``Progress.as_dict()``
  with ``"held"``: the outbox rows it held, and when (``ClaimLog``).

A worker that fails prints its traceback on stderr; the answer is then
``{"error": ...}``.

The kill points are every moment where the databases' state can change:
just before each write statement on any alias (an execute wrapper), and
just after each COMMIT (Django logs it on the ``django.db.backends``
logger). Just after a statement is just before the next, as far as the
databases can tell, and a kill anywhere before a COMMIT loses its whole
transaction alike. Forking spares Django's start-up per run: the loop
stays at a few seconds per backend.

SQLite's test databases live in the parent's memory: with
``CROSSFK_CHILD_SQLITE_DIR`` set, the workers open ``ALIAS.sqlite3`` files
there instead, which the parent copies in before a run and back after it.
"""

import json
import logging
import os
import signal
import sys
import time
import traceback
from contextlib import suppress
from pathlib import Path

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
SQLITE_DIR = os.environ.get("CROSSFK_CHILD_SQLITE_DIR")
if SQLITE_DIR:
    for alias, database in settings.DATABASES.items():
        if database["ENGINE"] == "django.db.backends.sqlite3":
            database["NAME"] = str(Path(SQLITE_DIR) / f"{alias}.sqlite3")
# One database at a time: crossfk.parallel would run the fast deletes of the
# worker's cascade (the flags', the replies') in two threads at once, and
# the N-th statement, where a worker is killed, would be one or the other.
settings.CROSSFK_MAX_PARALLEL = 1
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.db.models.signals import post_init  # noqa: E402

from crossfk.cleanup import clean_up, deferred_relations  # noqa: E402
from crossfk.management.commands.crossfk_cleanup import (  # noqa: E402
    Command as CleanUpCommand,
)
from crossfk.models import PendingCleanup  # noqa: E402
from crossfk.transaction import references  # noqa: E402

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class Crash(logging.Handler):
    """Counts kill points on every alias; dies at the chosen one, after
    writing where to ``report`` (a pipe to the waiting parent)."""

    def __init__(self, crash_at: int, report: int) -> None:
        super().__init__()
        self.crash_at, self.points, self.report = crash_at, 0, report

    def point(self, where: str) -> None:
        if self.points == self.crash_at:
            os.write(self.report, where.encode() + b"\n")
            os.kill(os.getpid(), signal.SIGKILL)
        self.points += 1

    def install(self) -> None:
        for alias in connections:
            connection = connections[alias]
            connection.execute_wrappers.append(self.before_write)
            connection.force_debug_cursor = True  # COMMITs are logged
        backends = logging.getLogger("django.db.backends")
        backends.setLevel(logging.DEBUG)
        backends.addHandler(self)

    def before_write(self, execute, sql, params, many, context):
        if sql.lstrip().upper().startswith(WRITES):
            statement = readable(sql, params, many)
            self.point(f"before {statement[:70]} on {context['connection'].alias}")
        return execute(sql, params, many, context)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "sql", None) == "COMMIT":
            self.point(f"after COMMIT on {record.alias}")


def readable(sql: str, params, many: bool) -> str:
    """``sql`` unquoted, on one line, with NULL for each None parameter:
    Django 5.2 writes ``SET x = NULL``, 6.1 passes None for it."""
    if params and not many:
        # Not with parameters by name, nor a literal %.
        with suppress(TypeError, ValueError):
            sql = sql % tuple("NULL" if value is None else "%s" for value in params)
    return " ".join(sql.replace('"', "").replace("`", "").split())


class ClaimLog:
    """When this worker held which outbox rows: from reading its claim to
    the first statement that hands them back (the outbox DELETE, or the
    release UPDATE). Two workers' spans of one row must never overlap."""

    def __init__(self) -> None:
        self.held: list[tuple[int, float, float]] = []
        self.holding: list[tuple[int, float]] = []

    def install(self) -> None:
        post_init.connect(self.claimed, sender=PendingCleanup)
        for alias in connections:
            connections[alias].execute_wrappers.append(self.before_statement)

    def claimed(self, sender, instance, **kwargs) -> None:
        self.holding.append((instance.pk, time.monotonic()))

    def before_statement(self, execute, sql, params, many, context):
        statement = readable(sql, params, many).upper()
        hands_back = statement.startswith("DELETE FROM CROSSFK_PENDINGCLEANUP") or (
            statement.startswith("UPDATE CROSSFK_PENDINGCLEANUP SET CLAIMED_BY = NULL")
        )
        if hands_back and self.holding:
            now = time.monotonic()
            self.held += [(pk, since, now) for pk, since in self.holding]
            self.holding = []
        return execute(sql, params, many, context)


def run(scenario: str) -> dict:
    """Run one worker the way SCENARIO names it; what it did."""
    if scenario == "crossfk_cleanup":
        call_command(CleanUpCommand(), verbosity=0)
        return {}
    if scenario == "clean_up:batches_of_1":
        return clean_up(batch_size=1).as_dict()
    raise ValueError(f"Unknown scenario {scenario!r}.")


def fork_worker(scenario: str, report: int, crash_at: int | None = None) -> int:
    """A child process that runs ``scenario``; killed at ``crash_at``, it
    writes where to ``report``, else what it did. It never returns here."""
    pid = os.fork()
    if pid:
        os.close(report)
        return pid
    status = 1
    try:
        claims = ClaimLog()
        if crash_at is None:
            claims.install()
        else:
            Crash(crash_at, report).install()
        progress = run(scenario)
        if crash_at is None:
            os.write(report, json.dumps({**progress, "held": claims.held}).encode())
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(status)  # no atexit handler, no flush of another's buffers


def read_all(read_end: int) -> str:
    with os.fdopen(read_end, "rb") as pipe:
        return pipe.read().decode()


def exit_code(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def crash(scenario: str, crash_at: int) -> dict:
    read_end, write_end = os.pipe()
    pid = fork_worker(scenario, write_end, crash_at)
    killed_at = read_all(read_end).strip() or None
    code = exit_code(pid)
    if code not in (0, -signal.SIGKILL):
        raise RuntimeError(f"The worker failed with exit code {code}.")
    return {"killed_at": killed_at}


def race(scenario: str, workers: int) -> dict:
    pipes = [os.pipe() for _ in range(workers)]
    pids = [fork_worker(scenario, write_end) for _, write_end in pipes]
    reports = [read_all(read_end) for read_end, _ in pipes]
    codes = [exit_code(pid) for pid in pids]
    if any(codes):
        raise RuntimeError(f"A worker failed: exit codes {codes}.")
    return {"progress": [json.loads(report) for report in reports]}


def serve() -> None:
    # What every worker would compute first, computed once for them all.
    deferred_relations()
    references()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "crash_at" in request:
                answer = crash(request["run"], request["crash_at"])
            else:
                answer = race(request["run"], request["workers"])
        except RuntimeError as error:  # the traceback is on stderr
            answer = {"error": str(error)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve()
