"""``crossfk.atomic``: one atomic block on each of several databases.

No database can commit together with another, so a crash between two commits
leaves one written and the other not. crossfk chooses which goes first: when
the block adds references, the databases that gained referenced rows commit
first (a crash leaves an unreferenced target), and databases only read
commit last (keeping their FOR KEY SHARE locks until the references are
committed); when it deletes, the referencing databases commit first (a crash
leaves an unreferenced target again, never a dangling reference).
With ``two_phase=True`` on PostgreSQL,
every database is prepared (``PREPARE TRANSACTION``) before any commits, and
``crossfk_recover`` finishes what a crash interrupted.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ContextDecorator, ExitStack

from django.db import NotSupportedError, connections, transaction

# Global transaction id of one participant: the block's id, the position of
# this database in the commit order, and how many databases took part.
PREPARED_GID = re.compile(
    r"^crossfk:(?P<block>[0-9a-f]{32}):(?P<index>\d+):(?P<count>\d+)$"
)


def prepared_gid(block_id: str, index: int, count: int) -> str:
    return f"crossfk:{block_id}:{index}:{count}"


def reference_order(aliases: Iterable[str]) -> list[str]:
    """``aliases`` with each database before the ones that reference its rows.

    A cycle of references has no safe order: the database that references
    the others' rows through the fewest relations goes first, leaving the
    fewest relations exposed to a crash; ties keep the caller's order.
    """
    remaining, ordered = list(aliases), []
    if len(remaining) < 2:
        return remaining  # Nothing to order: skip reading every model's fields.
    from crossfk.fields import cross_foreign_keys  # fields imports this module

    references = Counter(
        (field.target_alias, field.source_alias) for field in cross_foreign_keys()
    )
    while remaining:
        first = min(
            remaining,
            key=lambda alias: sum(
                references[other, alias] for other in remaining if other != alias
            ),
        )
        ordered.append(first)
        remaining.remove(first)
    return ordered


class WriteWatcher:
    """An execute wrapper that notes what a block wrote, and where."""

    def __init__(self, alias: str, written: set, deleted: set) -> None:
        self.alias, self.written, self.deleted = alias, written, deleted

    def __call__(self, execute, sql, params, many, context):
        verb = sql.lstrip()[:6].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            self.written.add(self.alias)
        if verb == "DELETE":
            self.deleted.add(self.alias)
        return execute(sql, params, many, context)


class CrossAtomic(ContextDecorator):
    def __init__(self, aliases, savepoint: bool, durable: bool, two_phase: bool):
        self.aliases = tuple(dict.fromkeys(aliases))
        self.savepoint, self.durable, self.two_phase = savepoint, durable, two_phase
        if two_phase:
            unsupported = [
                alias
                for alias in self.aliases
                if connections[alias].vendor != "postgresql"
            ]
            if unsupported:
                raise NotSupportedError(
                    f"two_phase=True needs PostgreSQL; not so for "
                    f"{', '.join(map(repr, unsupported))}."
                )

    def _recreate_cm(self):
        # A decorated function may run again (or recursively) before the
        # last call has left its blocks: give each call its own state.
        return type(self)(self.aliases, self.savepoint, self.durable, self.two_phase)

    def __enter__(self):
        self.is_outermost = not any(
            connections[alias].in_atomic_block for alias in self.aliases
        )
        self.blocks = {}
        self.written, self.deleted = set(), set()
        self.wrappers = ExitStack()
        try:
            for alias in self.aliases:
                block = transaction.atomic(
                    using=alias, savepoint=self.savepoint, durable=self.durable
                )
                block.__enter__()
                self.blocks[alias] = block
                watcher = WriteWatcher(alias, self.written, self.deleted)
                self.wrappers.enter_context(connections[alias].execute_wrapper(watcher))
        except BaseException as error:
            self.wrappers.close()
            self.leave(list(self.blocks), (type(error), error, error.__traceback__))
            raise
        return self

    def commit_order(self) -> list[str]:
        order = reference_order(self.aliases)
        if self.deleted:
            return order[::-1]
        # Adding references: databases that gained referenced rows commit
        # first; those only read (and locked, FOR KEY SHARE) commit last, so
        # their locks last until the references are committed.
        return [alias for alias in order if alias in self.written] + [
            alias for alias in order if alias not in self.written
        ]

    def __exit__(self, exc_type, exc_value, traceback):
        self.wrappers.close()
        order = self.commit_order()
        outcome = (exc_type, exc_value, traceback)
        if exc_type is None and self.two_phase and self.is_outermost:
            return self.leave_in_two_phases(order)
        error = self.leave(order, outcome)
        if error is not None and error is not exc_value:
            raise error
        return False

    def leave(self, order, outcome):
        """Leave every block; after a failed commit, roll the rest back."""
        for alias in order:
            try:
                self.blocks[alias].__exit__(*outcome)
            except BaseException as error:
                outcome = (type(error), error, error.__traceback__)
        return outcome[1]

    def leave_in_two_phases(self, order):
        block_id, count = uuid.uuid4().hex, len(order)
        gids = {
            alias: prepared_gid(block_id, index, count)
            for index, alias in enumerate(order, start=1)
        }
        prepared = []
        try:
            for alias in order:
                # PREPARE ends the session's transaction: the commit Django
                # then runs on leaving the block has nothing left to do.
                with connections[alias].cursor() as cursor:
                    cursor.execute(f"PREPARE TRANSACTION '{gids[alias]}'")
                prepared.append(alias)
        except BaseException as error:
            self.leave(order, (type(error), error, error.__traceback__))
            finish_prepared({alias: gids[alias] for alias in prepared}, commit=False)
            raise
        error = self.leave(order, (None, None, None))
        if error is not None:
            finish_prepared(gids, commit=False)
            raise error
        finish_prepared(gids, commit=True)
        return False


def finish_prepared(gids: dict[str, str], commit: bool) -> None:
    """COMMIT or ROLLBACK PREPARED each alias's transaction, in order."""
    verb = "COMMIT" if commit else "ROLLBACK"
    for alias, gid in gids.items():
        if not PREPARED_GID.match(gid):  # It is spliced into SQL: never trust it.
            raise ValueError(f"Not a crossfk transaction id: {gid!r}")
        with connections[alias].cursor() as cursor:
            cursor.execute(f"{verb} PREPARED '{gid}'")


def atomic(
    *aliases: str | Callable,
    savepoint: bool = True,
    durable: bool = False,
    two_phase: bool = False,
) -> CrossAtomic | Callable:
    """Open ``transaction.atomic()`` on each alias (every alias when none given).

    Usable as a context manager and as a decorator, with or without
    arguments, like Django's. The commit order is crossfk's choice (see the
    module docstring); ``two_phase=True`` adds PostgreSQL's two-phase commit.
    """
    if len(aliases) == 1 and isinstance(aliases[0], Callable):
        return CrossAtomic(tuple(connections), savepoint, durable, two_phase)(
            aliases[0]
        )
    return CrossAtomic(aliases or tuple(connections), savepoint, durable, two_phase)
