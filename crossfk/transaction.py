"""``crossfk.atomic``: one atomic block on each of several databases.

No database can commit together with another, so a crash between two commits
leaves one written and the other not. crossfk chooses which goes first, from
what it declares it did inside the block (``declare()``), never from the SQL
that ran: when the block adds references, targets commit before the rows
that refer to them (a crash leaves an unreferenced target), except that a
database where crossfk only read and locked targets (a shared row lock) commits
last, keeping its locks until the references are committed; when a delete
removed references, the referencing databases commit first (a crash leaves
an unreferenced target again, never a dangling reference). With
``two_phase=True``, every database is prepared (PostgreSQL's ``PREPARE
TRANSACTION``, an XA transaction on MariaDB and MySQL) before any commits,
and ``crossfk_recover`` finishes what a crash interrupted.

Inside Django's own transactions, a write over several databases is safe
only when one ``crossfk.atomic`` settles all of them: ``owning_block()``
finds it, or refuses the write before anything is written. Where a plain
savepoint on one database could roll back without the others (the admin's
``transaction.atomic()`` inside a request-wide ``crossfk.atomic``), the
references written are checked again just before the commit, as a deferred
constraint would be. ``on_commit()`` callbacks run once every database has
committed.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from contextlib import ContextDecorator
from types import TracebackType
from typing import Any, Literal, overload

from django.db import DatabaseError, NotSupportedError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from crossfk.exceptions import CrossDBIntegrityError, CrossDBTransactionError
from crossfk.parallel import connect_at_once, run_per_alias
from crossfk.placement import names, working_aliases
from crossfk.relations import CrossRelation, cross_foreign_keys
from crossfk.resolvers import in_databases
from crossfk.twophase import (
    TWO_PHASE_VENDORS,
    finish_prepared,
    prepared_gid,
    transaction_id,
)

# What a block is left with: sys.exc_info()'s triple, or three Nones.
Outcome = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


def references() -> Counter[tuple[str, str]]:
    """How many relations have targets in one database and references in
    another: ``{(target alias, referencing alias): count}``."""
    return Counter(
        (target_alias, referencing_alias)
        for field in cross_foreign_keys()
        for target_alias in field.target_aliases
        for referencing_alias in field.referencing_aliases
    )


def reference_order(
    aliases: Iterable[str], counts: Counter[tuple[str, str]] | None = None
) -> list[str]:
    """``aliases`` with each database before the ones that reference its rows
    (through the relations ``counts``, by default every one installed).

    A cycle of references has no safe order: the database that references
    the others' rows through the fewest relations goes first, leaving the
    fewest relations exposed to a crash; ties keep the caller's order.
    """
    remaining, ordered = list(aliases), []
    if len(remaining) < 2:
        return remaining  # Nothing to order: skip reading every model's fields.
    counts = references() if counts is None else counts
    while remaining:
        first = min(
            remaining,
            key=lambda alias: sum(
                counts[other, alias] for other in remaining if other != alias
            ),
        )
        ordered.append(first)
        remaining.remove(first)
    return ordered


class Participant(transaction.Atomic):
    """One database's block of a ``crossfk.atomic``, which it names, and its
    part of a two-phase commit."""

    def __init__(self, block: CrossAtomic, alias: str) -> None:
        super().__init__(alias, block.savepoint, block.durable)
        self.crossfk_block, self.alias = block, alias
        # The two-phase transaction: its gid, and how far it got: "started"
        # (XA START), "ended" (XA END), "prepared", "finished".
        self.gid = self.state = ""

    def start_branch(self, gid: str) -> None:
        """XA START: MariaDB and MySQL name an XA transaction before its first
        statement, and refuse it after one."""
        with connections[self.alias].cursor() as cursor:
            cursor.execute(f"XA START {transaction_id(connections[self.alias], gid)}")
        self.gid, self.state = gid, "started"

    def prepare(self, gid: str) -> None:
        xid = transaction_id(connections[self.alias], gid)
        with connections[self.alias].cursor() as cursor:
            if self.state == "started":
                cursor.execute(f"XA END {xid}")
                self.state = "ended"
                cursor.execute(f"XA PREPARE {xid}")
            else:
                # PREPARE ends the session's transaction: the commit Django
                # then runs on leaving the block has nothing left to do.
                cursor.execute(f"PREPARE TRANSACTION {xid}")
        self.gid, self.state = gid, "prepared"

    @property
    def holds_branch(self) -> bool:
        """Whether an XA transaction still holds the session: Django's own
        COMMIT and ROLLBACK fail until XA COMMIT or XA ROLLBACK ends it."""
        return self.state in ("started", "ended") or (
            self.state == "prepared" and connections[self.alias].vendor == "mysql"
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.holds_branch:
            self.release_branch()
        super().__exit__(exc_type, exc_value, traceback)

    def release_branch(self) -> None:
        """Roll back an XA transaction not prepared; leave a prepared one,
        whose commit failed or never came, to ``crossfk_recover``."""
        if self.state == "prepared" or not self.rolled_back_branch():
            # Ending the session rolls back a branch not prepared, and hands a
            # prepared one over to any session.
            connections[self.alias].close()
        self.state = "finished"

    def rolled_back_branch(self) -> bool:
        connection = connections[self.alias]
        xid = transaction_id(connection, self.gid)
        try:
            with connection.cursor() as cursor:
                if self.state == "started":
                    cursor.execute(f"XA END {xid}")
                cursor.execute(f"XA ROLLBACK {xid}")
        except DatabaseError:
            return False
        return True


def open_blocks(alias: str) -> list[transaction.Atomic]:
    """The atomic blocks open on ``alias``, outermost first, less a TestCase's."""
    return open_blocks_on(connections[alias])


def open_blocks_on(connection: BaseDatabaseWrapper) -> list[transaction.Atomic]:
    """``open_blocks()`` of one thread's connection."""
    return [
        block
        for block in connection.atomic_blocks
        if not getattr(block, "_from_testcase", False)
    ]


def transaction_owner(alias: str) -> CrossAtomic | transaction.Atomic | None:
    """What will commit ``alias``'s open transaction, if any: the
    ``crossfk.atomic`` or Django atomic block outermost on it."""
    return transaction_owner_on(connections[alias])


def transaction_owner_on(
    connection: BaseDatabaseWrapper,
) -> CrossAtomic | transaction.Atomic | None:
    """``transaction_owner()`` of one thread's connection (``crossfk.guardrails``
    asks from a worker about the connections of the thread it works for)."""
    blocks = open_blocks_on(connection)
    if not blocks:
        return None
    owner: CrossAtomic | transaction.Atomic = getattr(
        blocks[0], "crossfk_block", blocks[0]
    )
    return owner


def describe_owner(alias: str) -> str:
    owner = transaction_owner(alias)
    if owner is None:
        return f"'{alias}' is in no transaction"
    if isinstance(owner, CrossAtomic):
        return f"'{alias}' is inside {owner!r}"
    return f"'{alias}' is inside a transaction.atomic() block"


def settle_together(aliases: Iterable[str]) -> bool:
    """Whether one commit settles every one of ``aliases``: none of them is
    in a transaction, or one ``crossfk.atomic`` over all of them owns theirs."""
    aliases = set(aliases)
    owners = {transaction_owner(alias) for alias in aliases}
    if owners == {None} or len(aliases) < 2:
        return True
    owner = owners.pop() if len(owners) == 1 else None
    return isinstance(owner, CrossAtomic) and aliases <= set(owner.aliases)


def owning_block(aliases: Iterable[str], doing: str) -> CrossAtomic | None:
    """The ``crossfk.atomic`` that will commit every one of ``aliases``.

    None when none of them is in a transaction. Otherwise a database could
    commit or roll back without the others: raise before anything is
    written, saying what ``doing`` needed and how to get it.
    """
    aliases = tuple(dict.fromkeys(aliases))
    if not settle_together(aliases):
        names = ", ".join(map(repr, aliases))
        states = "; ".join(describe_owner(alias) for alias in aliases)
        raise CrossDBTransactionError(
            f"{doing} needs {names} to commit or roll back together, but "
            f"{states}: a rollback of one would leave the other's writes in "
            f"place. Nothing was written. Open the outer block with "
            f"crossfk.atomic({names}), and for requests use "
            f"crossfk.middleware.AtomicRequestsMiddleware instead of "
            f"ATOMIC_REQUESTS."
        )
    owner = transaction_owner(aliases[0]) if len(aliases) > 1 else None
    return owner if isinstance(owner, CrossAtomic) else None


def rollback_levels(alias: str) -> list[CrossAtomic | None]:
    """The blocks open on ``alias`` that can roll back on their own, each as
    the ``crossfk.atomic`` it belongs to (None for Django's own)."""
    return [
        getattr(block, "crossfk_block", None)
        for depth, block in enumerate(open_blocks(alias))
        if depth == 0 or block.savepoint
    ]


def roll_back_together(aliases: Iterable[str]) -> bool:
    """Whether every rollback that can happen now reaches all of ``aliases``."""
    first, *others = [rollback_levels(alias) for alias in aliases]
    return None not in first and all(levels == first for levels in others)


def checked_at_commit(
    field: CrossRelation, using: str, doing: str, target_alias: str | None = None
) -> CrossAtomic | None:
    """Where references ``field`` writes in ``using`` to targets in
    ``target_alias`` (the field's by default) must be checked again.

    The ``crossfk.atomic`` that commits both ends, when a savepoint inside
    it could roll back the target's end alone; None when the target is
    committed already or every rollback reaches both ends. Raise when no
    block commits both ends although the target's end is in a transaction:
    the target may exist only there.
    """
    target_alias = target_alias or field.target_alias
    aliases = (target_alias, using)
    if using == target_alias or transaction_owner(target_alias) is None:
        return None
    block = owning_block(aliases, doing)
    return None if roll_back_together(aliases) else block


def declare(
    alias: str,
    *,
    writes: bool = False,
    locks: bool = False,
    deletes: Iterable[tuple[str, str]] = (),
) -> None:
    """Tell the ``crossfk.atomic`` that will commit ``alias``, if any, what
    crossfk did there: the commit order follows from these facts alone.

    ``writes``: rows were added or changed there (a target saved, references
    written); ``locks``: targets were locked with a shared lock there, to write
    references to them elsewhere; ``deletes``: a delete removed references
    to its targets, ``(target alias, referencing alias)`` for each relation
    it followed. Only those relations order its commits: the ones it left
    alone (``DO_NOTHING``, deferred actions) refer to deleted rows in any
    order.
    """
    owner = transaction_owner(alias)
    if not isinstance(owner, CrossAtomic):
        return
    if writes:
        owner.written.add(alias)
    if locks:
        owner.locked.add(alias)
    owner.deletes.update(deletes)


def note_target_saved(sender: type, using: str, **kwargs: Any) -> None:
    """``post_save`` receiver for the targets of cross relations."""
    declare(using, writes=True)


class CrossAtomic(ContextDecorator):
    """What ``crossfk.atomic()`` returns: a context manager and decorator."""

    def __init__(
        self, aliases: Iterable[str], savepoint: bool, durable: bool, two_phase: bool
    ) -> None:
        self.named_aliases = tuple(dict.fromkeys(aliases))
        self.aliases = self.named_aliases
        self.savepoint, self.durable, self.two_phase = savepoint, durable, two_phase
        self.refuse_two_phase_elsewhere()

    def refuse_two_phase_elsewhere(self) -> None:
        unsupported = [
            alias
            for alias in self.aliases
            if self.two_phase and connections[alias].vendor not in TWO_PHASE_VENDORS
        ]
        if unsupported:
            raise NotSupportedError(
                f"two_phase=True needs PostgreSQL, MariaDB or MySQL; not so for "
                f"{names(unsupported)}."
            )

    def refuse_xa_begun_elsewhere(self) -> None:
        """Raise before anything is written if an XA transaction cannot be
        started on a MariaDB or MySQL database: another block began its
        transaction, and XA START must come before its first statement."""
        begun = [
            alias
            for alias in self.aliases
            if connections[alias].vendor == "mysql"
            and (owner := transaction_owner(alias)) is not None
            and not getattr(owner, "two_phase", False)
        ]
        if begun:
            raise CrossDBTransactionError(
                f"{self!r} with two_phase=True must begin the transaction on "
                f"{names(begun)}: MariaDB and MySQL start an XA transaction "
                f"only before the first statement, but "
                f"{'; '.join(map(describe_owner, begun))}. Nothing was written. "
                f"Open the two-phase block outside the other one."
            )

    def __repr__(self) -> str:
        return f"crossfk.atomic({', '.join(map(repr, self.aliases))})"

    def _recreate_cm(self) -> CrossAtomic:
        # A decorated function may run again (or recursively) before the
        # last call has left its blocks: give each call its own state.
        return type(self)(
            self.named_aliases, self.savepoint, self.durable, self.two_phase
        )

    def __enter__(self) -> CrossAtomic:
        if not self.named_aliases:
            self.aliases = tuple(working_aliases())
            self.refuse_two_phase_elsewhere()
        if len(self.aliases) > 1:
            owning_block(self.aliases, repr(self))
        if self.two_phase:
            self.refuse_xa_begun_elsewhere()
        # The databases on which this block opens the transaction: it commits
        # them, and runs their on_commit() callbacks once all have committed.
        self.outermost = [
            alias for alias in self.aliases if not connections[alias].in_atomic_block
        ]
        self.is_outermost = len(self.outermost) == len(self.aliases)
        self.blocks: dict[str, Participant] = {}
        # The order the databases prepare in, the first alone, which also
        # commits first (see crossfk_recover): the commit order, decided on
        # leaving, unless XA START names a transaction before that. Then the
        # databases that refer to others' rows go first, as a delete commits.
        self.block_id = uuid.uuid4().hex
        self.numbering: list[str] | None = None
        if (
            self.two_phase
            and self.is_outermost
            and any(connections[alias].vendor == "mysql" for alias in self.aliases)
        ):
            self.numbering = reference_order(self.aliases)[::-1]
        # What crossfk declared it did inside the block (see declare()).
        self.written: set[str] = set()
        self.locked: set[str] = set()
        # (target alias, referencing alias) of each relation a delete followed.
        self.deletes: Counter[tuple[str, str]] = Counter()
        # What to check again just before the commit: the references written,
        # {(field, alias written): target values}, and the targets deleted
        # with their references, {field: target values}.
        self.written_references: defaultdict[tuple[CrossRelation, str], set[Any]] = (
            defaultdict(set)
        )
        self.deleted_targets: defaultdict[CrossRelation, set[Any]] = defaultdict(set)
        try:
            connect_at_once(self.outermost)
            gids = self.gids(self.numbering or [])
            for alias in self.aliases:
                block = Participant(self, alias)
                block.__enter__()
                self.blocks[alias] = block
                if connections[alias].vendor == "mysql" and alias in gids:
                    block.start_branch(gids[alias])
        except BaseException as error:
            self.leave(list(self.blocks), (type(error), error, error.__traceback__))
            raise
        return self

    def commit_order(self) -> list[str]:
        """The order the databases commit in, from what crossfk declared."""
        if self.deletes:
            return reference_order(self.aliases, self.deletes)[::-1]
        order = reference_order(self.aliases)
        # Adding references: targets commit before the rows that refer to
        # them, except where crossfk only read and locked targets (FOR KEY
        # SHARE): that database commits last, keeping its locks until the
        # references are committed.
        held = [
            alias
            for alias in order
            if alias in self.locked and alias not in self.written
        ]
        return [alias for alias in order if alias not in held] + held

    def commit_steps(self, order: list[str]) -> list[list[str]]:
        """``order`` cut into steps that each commit at once: consecutive
        databases none of which holds references to another's rows, and
        which all keep locks to the end or none does."""
        counts = (self.deletes or references()) if len(order) > 1 else Counter()
        kept_locks = {a for a in self.locked if a not in self.written}
        steps: list[list[str]] = []
        for alias in order:
            step = steps[-1] if steps else []
            if (
                step
                and (alias in kept_locks) == (step[0] in kept_locks)
                and not any(
                    counts[alias, other] or counts[other, alias] for other in step
                )
            ):
                step.append(alias)
            else:
                steps.append([alias])
        return steps

    def check_at_commit(
        self, field: CrossRelation, using: str, values: Iterable[Any]
    ) -> None:
        """Check, just before committing, that the references ``field`` has in
        ``using`` to ``values`` still find their targets."""
        self.written_references[field, using].update(values)

    def check_deleted_at_commit(
        self, field: CrossRelation, values: Iterable[Any]
    ) -> None:
        """Check, just before committing, that the targets of ``field`` with
        ``values``, deleted with their references, are still deleted."""
        self.deleted_targets[field].update(values)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:
        order = self.commit_order()
        outcome: Outcome = (exc_type, exc_value, traceback)
        callbacks: dict[str, list[Any]] = {}
        if exc_type is None:
            if any(connections[alias].needs_rollback for alias in self.aliases):
                # set_rollback() on one database rolls back all of them.
                for alias in self.aliases:
                    connections[alias].needs_rollback = True
            else:
                try:
                    self.run_deferred_checks()
                except CrossDBIntegrityError as error:
                    outcome = (type(error), error, error.__traceback__)
                else:
                    callbacks = self.take_commit_callbacks()
        rolls_back = any(connections[alias].needs_rollback for alias in self.aliases)
        if (
            outcome[0] is None
            and not rolls_back
            and self.two_phase
            and self.is_outermost
        ):
            self.leave_in_two_phases(order)
        else:
            failure = self.leave(order, outcome)
            if failure is not None:
                if failure is exc_value:
                    return False
                raise failure
        self.run_commit_callbacks(order, callbacks)
        return False

    def run_deferred_checks(self) -> None:
        """Raise if a savepoint rolled back one end of a relation this block
        wrote both ends of: a reference would dangle, or rows deleted with a
        target that came back would be lost."""
        rolled_back = (
            f"a savepoint inside {self!r} rolled back one database but not "
            f"the other. {self!r} was rolled back in every database."
        )
        for field, values in self.deleted_targets.items():
            ids_by_alias = field.target_ids_by_alias({None: values})
            back = sorted(field.found_target_ids(ids_by_alias, lock=False), key=str)
            if back:
                target = field.remote_field.model._meta.object_name
                raise CrossDBIntegrityError(
                    f"{field.describe()}: {target} {', '.join(map(repr, back))} "
                    f"in {names(list(ids_by_alias))} was deleted with the rows that "
                    f"refer to it in '{field.referencing_alias}', then its deletion "
                    f"was undone: {rolled_back}"
                )
        for (field, using), values in self.written_references.items():
            referenced = (
                field.model._base_manager.using(using)
                .filter(**{f"{field.attname}__in": list(values)})
                .values_list(field.attname, flat=True)
                .distinct()
            )
            missing = field.missing_target_ids(referenced, using)
            if missing:
                target = field.remote_field.model._meta.object_name
                aliases = list(field.target_ids_by_alias({using: missing}))
                has = "has" if len(aliases) == 1 else "have"
                raise CrossDBIntegrityError(
                    f"{field.describe()}: rows in '{using}' refer to {target} "
                    f"{', '.join(map(repr, missing))}, which "
                    f"{in_databases(aliases)} no longer {has}: {rolled_back}"
                )

    def take_commit_callbacks(self) -> dict[str, list[Any]]:
        """The on_commit() callbacks of the transactions this block commits.

        Django would run each database's callbacks as soon as that database
        commits, before the next one has: they are held back and run once
        every database has committed.
        """
        callbacks = {}
        for alias in self.outermost:
            connection = connections[alias]
            callbacks[alias], connection.run_on_commit = connection.run_on_commit, []
        return callbacks

    def run_commit_callbacks(
        self, order: list[str], callbacks: dict[str, list[Any]]
    ) -> None:
        """Run them as Django does; one that raises stops the rest, but every
        database has committed."""
        for alias in order:
            if callbacks.get(alias):
                connection = connections[alias]
                connection.run_on_commit = callbacks[alias]
                connection.run_and_clear_commit_hooks()

    def leave(self, order: list[str], outcome: Outcome) -> BaseException | None:
        """Leave every block, a step of ``commit_steps()`` at once; after a
        failed commit, roll the later steps back."""
        for step in self.commit_steps(order):

            def leave_block(alias: str, outcome: Outcome = outcome) -> Outcome:
                try:
                    self.blocks[alias].__exit__(*outcome)
                except BaseException as error:
                    return (type(error), error, error.__traceback__)
                return outcome

            outcomes = run_per_alias(leave_block, step, lend=True).values()
            outcome = next((o for o in outcomes if o[1] is not outcome[1]), outcome)
        return outcome[1]

    def gids(self, numbering: list[str]) -> dict[str, str]:
        return {
            alias: prepared_gid(self.block_id, index, len(numbering))
            for index, alias in enumerate(numbering, start=1)
        }

    def leave_in_two_phases(self, order: list[str]) -> None:
        """Prepare the first database of the numbering alone, then the rest
        at once; once all are prepared, commit the first alone, then the
        rest by commit steps. Anything a failure leaves prepared after the
        first committed is left to ``crossfk_recover``."""
        numbering = self.numbering or order
        gids = self.gids(numbering)

        def prepare(alias: str) -> BaseException | None:
            try:
                self.blocks[alias].prepare(gids[alias])
            except BaseException as error:
                return error
            return None

        first, *rest = numbering
        errors = {first: prepare(first)}
        if errors[first] is None:
            errors.update(run_per_alias(prepare, rest, lend=True))
        error = next((e for e in errors.values() if e is not None), None)
        if error is not None:
            outcome: Outcome = (type(error), error, error.__traceback__)
            # The first rolls back last: crossfk_recover commits the others
            # of a block whose first database is no longer prepared.
            self.settle(rest, outcome, commit=False)
            self.settle([first], outcome, commit=False)
            raise error
        steps = [[first], *self.commit_steps([a for a in order if a != first])]
        for number, step in enumerate(steps):
            failure = self.settle(step, (None, None, None), commit=True)
            if failure is not None:
                later = [alias for step in steps[number + 1 :] for alias in step]
                self.settle(later, (None, None, None), commit=None)
                raise failure

    def settle(
        self, aliases: list[str], outcome: Outcome, commit: bool | None
    ) -> BaseException | None:
        """Leave the blocks on ``aliases`` at once, and commit or roll back
        their prepared transactions (``commit=None``: leave them prepared).

        PREPARE TRANSACTION ended PostgreSQL's transaction: its block is left
        first, then COMMIT PREPARED runs outside any. An XA transaction holds
        its session until XA COMMIT or XA ROLLBACK: its block is left after.
        """

        def finish(block: Participant) -> None:
            if commit is not None and block.state == "prepared":
                finish_prepared({block.alias: block.gid}, commit)
                block.state = "finished"

        def settle_one(alias: str) -> BaseException | None:
            block = self.blocks[alias]
            try:
                if connections[alias].vendor == "mysql":
                    try:
                        finish(block)
                    finally:
                        block.__exit__(*outcome)
                else:
                    block.__exit__(*outcome)
                    finish(block)
            except BaseException as error:
                return error
            return None

        errors = run_per_alias(settle_one, aliases, lend=True).values()
        return next((e for e in errors if e is not None), None)


@overload
def atomic(func: Callable[..., Any], /) -> Callable[..., Any]: ...
@overload
def atomic(
    *aliases: str,
    savepoint: bool = True,
    durable: bool = False,
    two_phase: bool = False,
) -> CrossAtomic: ...
def atomic(
    *aliases: Any,
    savepoint: bool = True,
    durable: bool = False,
    two_phase: bool = False,
) -> CrossAtomic | Callable[..., Any]:
    """Open ``transaction.atomic()`` on each alias; when none is given, on
    each alias a model is pinned to, and the ``partition()`` in effect as the
    block opens.

    Usable as a context manager and as a decorator, with or without
    arguments, like Django's. The commit order is crossfk's choice (see the
    module docstring); ``two_phase=True`` adds two-phase commit (PostgreSQL,
    MariaDB and MySQL).
    """
    if len(aliases) == 1 and callable(aliases[0]):
        block = CrossAtomic((), savepoint, durable, two_phase)
        decorated: Callable[..., Any] = block(aliases[0])
        return decorated
    return CrossAtomic(aliases, savepoint, durable, two_phase)
