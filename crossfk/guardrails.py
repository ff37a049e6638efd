"""Guardrails for tests: fail at the statement that assumes one database.

Code written for one database keeps working, untested, against several:
Django writes to one alias inside another's ``transaction.atomic()`` as if
one rollback undid both, and sends a query for a table to whichever alias
the code named. ``guard_cross_database()`` watches every statement the
test's thread sends (and those of ``crossfk.parallel``'s workers, through
``around_worker_calls``) with Django's ``execute_wrapper()``, and raises
``CrossDatabaseError`` before the statement runs:

- a write to an alias while another alias is inside an atomic block that
  the written one is not part of (a ``crossfk.atomic`` over both is; the
  transaction a ``TestCase`` wraps around each test is not counted);
- a statement naming a table on an alias that does not hold it, or tables
  that live in different databases, according to the routers'
  ``allow_migrate()``.

``allow_cross_database(reason=...)`` lets a block do so on purpose, and is
recorded so that the allowances can be listed and counted.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ContextDecorator, ExitStack
from contextvars import ContextVar, Token
from dataclasses import dataclass
from functools import cache
from threading import Lock
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.signals import setting_changed
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.signals import class_prepared

from crossfk.parallel import around_worker_calls
from crossfk.placement import names
from crossfk.transaction import CrossAtomic, transaction_owner_on


class CrossDatabaseError(AssertionError):
    """A statement that is right on one database and wrong across several.

    An ``AssertionError``, as a failed ``assert`` is: a test failure to fix
    in the code, not a database error that the code under test might
    catch and handle (``except DatabaseError`` lets it through).
    """


# The statements that change rows; transaction control, reads and row
# locks are not writes.
WRITE = re.compile(
    r"\s*(?:/\*.*?\*/\s*)*(INSERT|UPDATE|DELETE|REPLACE|MERGE|TRUNCATE)\b",
    re.IGNORECASE | re.DOTALL,
)
WRITTEN_TABLE = re.compile(r"\b(?:INTO|UPDATE|FROM|TABLE)\s+[\"`]?([^\"`\s(]+)", re.I)
FIRST_WORD = re.compile(r"\s*(?:/\*.*?\*/\s*)*(\w+)", re.DOTALL)

GUARD_HINT = (
    "(crossfk.testing.guard_cross_database; wrap code that does this on "
    "purpose in crossfk.testing.allow_cross_database(reason=...))"
)


# Allowances ------------------------------------------------------------------


@dataclass
class Allowance:
    """One ``allow_cross_database()`` of the code: where, why, how often.

    ``uses``: how many times its block was entered; ``excused``: how many
    statements it let through that the guard would have failed.
    """

    reason: str
    location: str
    uses: int = 0
    excused: int = 0


_allowances: dict[tuple[str, str], Allowance] = {}
_allowances_lock = Lock()
_allowance: ContextVar[Allowance | None] = ContextVar("crossfk_allowance", default=None)


def allowances() -> list[Allowance]:
    """Every allowance entered so far in this process, by location."""
    with _allowances_lock:
        return sorted(_allowances.values(), key=lambda a: (a.location, a.reason))


def caller_location(depth: int) -> str:
    frame = sys._getframe(depth + 1)
    filename = frame.f_code.co_filename
    relative = os.path.relpath(filename)
    if not relative.startswith(os.pardir):
        filename = relative
    return f"{filename}:{frame.f_lineno}"


class allow_cross_database(ContextDecorator):
    """Let the block write across open transactions and name tables of other
    databases: for code that does so on purpose (a test of crossfk's
    refusals, a deliberate raw query). ``reason`` is required, and every
    allowance is recorded with its location (see ``allowances()``).
    """

    def __init__(self, *, reason: str, location: str | None = None) -> None:
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(
                'allow_cross_database() needs a reason="...": why this code '
                "may cross databases, so that allowances can be listed and "
                "counted."
            )
        self.reason = reason.strip()
        self.location = location or caller_location(1)
        self.tokens: list[Token[Allowance | None]] = []

    def _recreate_cm(self) -> allow_cross_database:
        return type(self)(reason=self.reason, location=self.location)

    def __enter__(self) -> Allowance:
        with _allowances_lock:
            allowance = _allowances.setdefault(
                (self.reason, self.location), Allowance(self.reason, self.location)
            )
            allowance.uses += 1
        self.tokens.append(_allowance.set(allowance))
        return allowance

    def __exit__(self, *exc_info: object) -> None:
        _allowance.reset(self.tokens.pop())


# Where tables live ---------------------------------------------------------


@cache
def table_aliases() -> dict[str, frozenset[str]]:
    """``{db_table: aliases}`` for each table of an installed model (and
    many-to-many table) that the routers allow in some aliases but not all:
    the tables a statement can send to the wrong database."""
    every = frozenset(settings.DATABASES)
    tables: dict[str, frozenset[str]] = {}
    for model in apps.get_models(include_auto_created=True):
        opts = model._meta
        if opts.proxy or opts.swapped:
            continue
        # router.allow_migrate(), not allow_migrate_model(): an unmanaged
        # table lives somewhere too, though Django does not create it.
        allowed = frozenset(
            alias
            for alias in every
            if router.allow_migrate(
                alias, opts.app_label, model_name=opts.model_name, model=model
            )
        )
        tables[opts.db_table] = tables.get(opts.db_table, frozenset()) | allowed
    return {
        table: aliases
        for table, aliases in tables.items()
        if aliases and aliases != every
    }


def forget_tables(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: the tables' aliases follow the settings."""
    if setting in (
        "DATABASES",
        "DATABASE_ROUTERS",
        "CROSSFK_PARTITIONS",
        "INSTALLED_APPS",
    ):
        table_aliases.cache_clear()


def forget_tables_of_new_models(**kwargs: Any) -> None:
    """``class_prepared`` receiver: a model made in a test has a table too."""
    table_aliases.cache_clear()


setting_changed.connect(forget_tables)
class_prepared.connect(forget_tables_of_new_models)


def named_tables(sql: str, connection: BaseDatabaseWrapper) -> list[str]:
    """The known tables ``sql`` names, in order: Django quotes every table
    name, in the vendor's quotes ("x", or `x` on MariaDB and MySQL)."""
    quote = connection.ops.quote_name("x")[0]
    known = table_aliases()
    found = re.findall(f"{quote}([^{quote}]+){quote}", sql)
    return [name for name in dict.fromkeys(found) if name in known]


# The checks ------------------------------------------------------------------


def describe_block(owner: CrossAtomic | transaction.Atomic, alias: str) -> str:
    if isinstance(owner, CrossAtomic):
        return repr(owner)
    return f"transaction.atomic(using={alias!r})"


def check_write(
    alias: str, sql: str, home: dict[str, BaseDatabaseWrapper]
) -> str | None:
    """Why a write to ``alias`` assumes an atomicity that does not exist, if
    it does: another alias's transaction that ``alias`` is not part of."""
    outside = {
        other: owner
        for other, connection in home.items()
        if other != alias
        and (owner := transaction_owner_on(connection)) is not None
        and not (isinstance(owner, CrossAtomic) and alias in owner.aliases)
    }
    if not outside:
        return None
    verb = WRITE.match(sql).group(1).upper()  # type: ignore[union-attr]
    table = WRITTEN_TABLE.search(sql)
    written = f'"{table.group(1)}"' if table else "a table"
    # One crossfk.atomic open on several aliases is named once.
    by_block: dict[str, list[str]] = {}
    for other, owner in outside.items():
        by_block.setdefault(describe_block(owner, other), []).append(other)
    states = "; ".join(
        f"{names(others)} {'is' if len(others) == 1 else 'are'} inside {block}"
        for block, others in by_block.items()
    )
    together = [
        *dict.fromkeys(
            alias
            for owner in outside.values()
            if isinstance(owner, CrossAtomic)
            for alias in owner.aliases
        ),
        *outside,
        alias,
    ]
    return (
        f"{verb} of {written} on {alias!r} while {states}, which {alias!r} is "
        f"not part of: a rollback there would leave this write in place. Open "
        f"the block with crossfk.atomic({names(list(dict.fromkeys(together)))}) "
        f"so that the databases commit or roll back together, or write "
        f"outside it. {GUARD_HINT}"
    )


def check_tables(alias: str, sql: str, tables: list[str]) -> str | None:
    """Why a statement's tables are not all on ``alias``, if they are not."""
    if not tables:
        return None
    known = table_aliases()
    word = FIRST_WORD.match(sql)
    statement = word.group(1).upper() if word else "statement"
    shared = frozenset.intersection(*(known[table] for table in tables))
    if not shared:
        where = ", ".join(
            f'"{table}" (in {names(sorted(known[table]))})' for table in tables
        )
        return (
            f"One {statement} on {alias!r} names tables of different "
            f"databases: {where}. No database holds them all, so no server "
            f"can run it: query each database on its own (a CrossDBForeignKey's "
            f"lookups read the target's database first, then filter by id). "
            f"{GUARD_HINT}"
        )
    elsewhere = [table for table in tables if alias not in known[table]]
    if not elsewhere:
        return None
    table = elsewhere[0]
    return (
        f'A {statement} on {alias!r} names "{table}", which lives in '
        f"{names(sorted(known[table]))}, not {alias!r}: the router and the code "
        f"disagree (a using({alias!r}), db_manager({alias!r}) or a related "
        f"instance's database?). Send it to {names(sorted(shared))}, where the "
        f"router places it. {GUARD_HINT}"
    )


@dataclass
class Check:
    """The ``execute_wrapper()`` on one thread's connection to one alias.

    ``home``: the connections of the thread that entered the guard, whose
    transactions a worker's writes are part of (or not).
    """

    home: dict[str, BaseDatabaseWrapper]

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        if isinstance(sql, str):  # not a psycopg sql.Composed
            problem = self.problem(context["connection"], sql)
            if problem is not None:
                allowance = _allowance.get()
                if allowance is None:
                    raise CrossDatabaseError(problem)
                with _allowances_lock:
                    allowance.excused += 1
        return execute(sql, params, many, context)

    def problem(self, connection: BaseDatabaseWrapper, sql: str) -> str | None:
        tables = named_tables(sql, connection)
        problem = check_tables(connection.alias, sql, tables)
        if problem is None and WRITE.match(sql):
            problem = check_write(connection.alias, sql, self.home)
        return problem


# The guard -------------------------------------------------------------------

_guarded: ContextVar[bool] = ContextVar("crossfk_guarded", default=False)


def watch_connections(check: Check) -> ExitStack:
    """Put ``check`` on this thread's connection to every alias."""
    stack = ExitStack()
    for alias in settings.DATABASES:
        stack.enter_context(connections[alias].execute_wrapper(check))
    return stack


class guard_cross_database(ContextDecorator):
    """Raise ``CrossDatabaseError`` at a statement, before it runs, that
    writes to one database inside another's transaction that it is not part
    of, or names tables of another database or of several.

    For every alias of ``DATABASES``, on this thread and on the workers of
    ``crossfk.parallel``. A guard inside another does nothing more.
    """

    def __init__(self) -> None:
        self.entered: list[ExitStack] = []

    def _recreate_cm(self) -> guard_cross_database:
        return type(self)()

    def __enter__(self) -> None:
        stack = ExitStack()
        if not _guarded.get():
            check = Check({alias: connections[alias] for alias in settings.DATABASES})
            stack.enter_context(watch_connections(check))

            def watch_worker(alias: str) -> AbstractContextManager[Any]:
                return watch_connections(check)

            watchers = (*around_worker_calls.get(), watch_worker)
            stack.callback(around_worker_calls.reset, around_worker_calls.set(watchers))
            stack.callback(_guarded.reset, _guarded.set(True))
        self.entered.append(stack)

    def __exit__(self, *exc_info: object) -> None:
        self.entered.pop().close()


def is_guarded() -> bool:
    """Whether a ``guard_cross_database()`` is in effect here."""
    return _guarded.get()


class CrossDatabaseGuardMixin:
    """Run each test of a ``TestCase`` or ``TransactionTestCase`` inside
    ``guard_cross_database()``: its ``setUp()`` onwards, not the class's
    fixtures nor Django's own set-up and tear-down.

    ``class MyTests(CrossDatabaseGuardMixin, TestCase)``.
    """

    enterContext: Callable[[AbstractContextManager[Any]], Any]

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.enterContext(guard_cross_database())


def iter_summary() -> Iterator[str]:
    """The allowances as lines of a report: count, reason, location."""
    for allowance in allowances():
        yield (
            f"{allowance.uses} x {allowance.reason} ({allowance.location}; "
            f"{allowance.excused} statements excused)"
        )
