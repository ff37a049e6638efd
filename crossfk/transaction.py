"""``crossfk.atomic``: one atomic block on each of several databases."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack, contextmanager

from django.db import connections, transaction


@contextmanager
def _atomic_block(aliases: tuple[str, ...], savepoint: bool, durable: bool):
    # ExitStack leaves the blocks in reverse order: the last alias commits
    # first. An exception, or a failed commit, rolls back every block still
    # open.
    with ExitStack() as stack:
        for alias in aliases:
            stack.enter_context(
                transaction.atomic(using=alias, savepoint=savepoint, durable=durable)
            )
        yield


def atomic(*aliases, savepoint: bool = True, durable: bool = False):
    """Open ``transaction.atomic()`` on each alias (every alias when none given).

    Usable as a context manager and as a decorator, with or without
    arguments, like Django's. Blocks commit in reverse order of ``aliases``,
    the last one first. So that a crash between two commits never leaves a
    dangling reference, list the database holding the referenced rows last
    when the block adds references (it commits first), and first when the
    block removes them (the referencing database then commits first).
    """
    if len(aliases) == 1 and isinstance(aliases[0], Callable):
        return _atomic_block(tuple(connections), savepoint, durable)(aliases[0])
    return _atomic_block(aliases or tuple(connections), savepoint, durable)
