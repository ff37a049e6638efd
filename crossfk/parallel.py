"""Queries to several databases at once: ``run_per_alias()``.

A fan-out over a database per tenant waits on each server in turn when it
runs serially: latency, not CPU, is what running them at once saves. Each
call runs in a thread of a pool, on that thread's own Django connections
(Django keeps them per thread), inside a copy of the caller's context, so
that ``crossfk.partition()`` and query captures apply there too.

Inside an open transaction on one of the databases (``atomic()``, a
``TestCase``), the calls run one after the other on the caller's own
connections instead: a worker's connection would not see the rows the
transaction has not committed.

``lend=True`` is for crossfk's own steps that each touch one database: a
worker then runs each call on the caller's connection to that database,
inside the caller's transaction if one is open, so a delete's block opens,
writes and commits its databases at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from contextvars import ContextVar, copy_context
from threading import Barrier, Lock, local
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

T = TypeVar("T")

# Context managers entered around each call in a worker, given the alias:
# how crossfk.testing's captures see the queries of workers.
around_worker_calls: ContextVar[
    tuple[Callable[[str], AbstractContextManager[Any]], ...]
] = ContextVar("crossfk_around_worker_calls", default=())

# What the caller's thread does while a fan-out's workers run, if anything:
# open the connection the query after the fan-out needs (see meanwhile()).
_meanwhile: ContextVar[Callable[[], object] | None] = ContextVar(
    "crossfk_meanwhile", default=None
)

DEFAULT_MAX_PARALLEL = 8


def max_parallel() -> int:
    """``CROSSFK_MAX_PARALLEL``: how many databases are asked at once."""
    value = getattr(settings, "CROSSFK_MAX_PARALLEL", DEFAULT_MAX_PARALLEL)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"CROSSFK_MAX_PARALLEL is {value!r}; it must be an integer of at "
            f"least 1 (1 asks one database after the other)."
        )
    return value


def runs_serially(aliases: Collection[str], lend: bool = False) -> bool:
    """Whether ``run_per_alias()`` runs on the caller's thread and connections.

    Also in a worker: a fan-out inside a fan-out's call would wait for
    workers that may all be waiting for it.
    """
    return (
        len(aliases) < 2
        or max_parallel() == 1
        or getattr(_worker, "active", False)
        or (not lend and any(connections[alias].in_atomic_block for alias in aliases))
    )


def run_per_alias(
    function: Callable[[str], T], aliases: Iterable[str], *, lend: bool = False
) -> dict[str, T]:
    """``{alias: function(alias)}`` for each alias, in order, at once.

    With ``lend=True`` each call runs on the caller's connection to its
    alias, lent to the worker for the call, even inside a transaction: for
    a ``function`` that queries that one database only (another would be
    reached on the worker's own connection, outside the caller's
    transaction).

    If calls raise, every call still ends first (none is left running);
    then the exception of the first alias in order that raised is raised.
    """
    aliases = list(dict.fromkeys(aliases))
    if runs_serially(aliases, lend):
        return {alias: function(alias) for alias in aliases}
    pool = worker_pool(max_parallel())
    lent = {alias: connections[alias] for alias in aliases} if lend else {}
    for connection in lent.values():
        connection.inc_thread_sharing()
    try:
        futures: dict[str, Future[T]] = {
            alias: pool.submit(
                copy_context().run, in_worker, function, alias, lent.get(alias)
            )
            for alias in aliases
        }
        # Not while lending: the task could use a lent connection.
        task, failure = None if lend else _meanwhile.get(), None
        if task is not None:
            try:
                task()
            except Exception as raised:  # raised once every call has ended
                failure = raised
        for future in futures.values():
            future.exception()  # let every call end first (waits for it)
    finally:
        for connection in lent.values():
            connection.dec_thread_sharing()
    for alias, future in futures.items():
        error = future.exception()
        if error is not None:
            error.add_note(
                f"(in database {alias!r}, asked with {len(futures) - 1} more)"
            )
            raise error
    if failure is not None:
        raise failure
    return {alias: future.result() for alias, future in futures.items()}


def release_connections(aliases: Iterable[str]) -> None:
    """Release the caller's connections to ``aliases`` as Django does at the
    end of a request (closed unless ``CONN_MAX_AGE`` keeps them), those in
    no transaction."""
    for alias in aliases:
        connection = connections[alias]
        if connection.connection is not None and not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


@contextmanager
def meanwhile(task: Callable[[], object]) -> Iterator[None]:
    """Have the caller's thread run ``task`` while the workers of a fan-out
    in the block run, instead of only waiting: what comes after the fan-out
    (opening a connection) then costs no round trip of its own."""
    token = _meanwhile.set(task)
    try:
        yield
    finally:
        _meanwhile.reset(token)


def connect_at_once(aliases: Iterable[str]) -> None:
    """Open the caller's connections to ``aliases`` at once: a connection
    costs round trips too."""
    run_per_alias(
        lambda alias: connections[alias].ensure_connection(), aliases, lend=True
    )


def in_worker(
    function: Callable[[str], T], alias: str, lent: BaseDatabaseWrapper | None
) -> T:
    """Run ``function(alias)`` in a worker; then release its connection as
    Django does at the end of a request (closed unless ``CONN_MAX_AGE``
    keeps it), so that 64 databases do not hold 64 idle connections."""
    _worker.active = True
    try:
        if lent is not None:
            # The caller's query captures are on its connection already.
            with lent_connection(lent):
                return function(alias)
        with ExitStack() as stack:
            for around in around_worker_calls.get():
                stack.enter_context(around(alias))
            return function(alias)
    finally:
        _worker.active = False
        for connection in connections.all(initialized_only=True):
            connection.close_if_unusable_or_obsolete()


@contextmanager
def lent_connection(lent: BaseDatabaseWrapper) -> Iterator[None]:
    """Make ``lent`` this thread's connection to its alias meanwhile; the
    thread's own, if it has one, comes back after."""
    own = [c for c in connections.all(initialized_only=True) if c.alias == lent.alias]
    connections[lent.alias] = lent
    try:
        yield
    finally:
        if own:
            connections[lent.alias] = own[0]
        else:
            del connections[lent.alias]


_worker = local()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = Lock()


def worker_pool(size: int) -> ThreadPoolExecutor:
    """The pool of worker threads, kept between calls so that a connection
    ``CONN_MAX_AGE`` keeps open is used again by the next fan-out; made
    anew when ``CROSSFK_MAX_PARALLEL`` changes."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=False)  # its calls still end
            _pool = ThreadPoolExecutor(size, thread_name_prefix="crossfk")
            _pool_size = size
        return _pool


def forget_pool_after_fork() -> None:
    """In a forked child the pool's threads are gone: start a new one."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=forget_pool_after_fork)


def close_worker_connections() -> None:
    """Close every worker's connections and stop the pool (the next fan-out
    starts another): at the end of a test run, before a fork. (At exit the
    process takes them with it.)"""
    global _pool
    with _pool_lock:
        pool, size, _pool = _pool, _pool_size, None
    if pool is None:
        return
    # One call per worker thread: each waits until all have started, so
    # that no thread runs two and every thread closes its own connections.
    started = Barrier(size)

    def close_own() -> None:
        started.wait()
        connections.close_all()

    for future in [pool.submit(close_own) for _ in range(size)]:
        future.result()
    pool.shutdown(wait=True)
