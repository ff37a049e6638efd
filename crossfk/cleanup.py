"""Applying deferred referential actions: ``crossfk_cleanup`` and its task.

Each batch claims up to ``batch_size`` outbox rows of one database for a
while (a lease), applies their actions to at most ``batch_size`` referencing
rows, deletes the outbox rows whose targets have no referencing row left,
and hands back the others. Nothing of a batch runs inside a transaction
longer than one statement or one Django ``delete()``.

A batch is idempotent: deleting or re-pointing the rows that still refer to
a deleted target can be done again without harm, so a worker killed at any
point loses nothing (its claim lapses, the next worker applies the rest) and
applies nothing twice wrongly. The claim is taken with ``SKIP LOCKED`` where
the server has it, so that several workers share the outbox without waiting
on each other; a row is claimed by one worker at a time on every backend.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import IntegrityError, connections, transaction
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from crossfk.deferred import DEFERRED_CASCADE, is_deferred, new_value, relation_label
from crossfk.idsets import IdSet
from crossfk.relations import CrossRelation, cross_foreign_keys

DEFAULT_BATCH_SIZE = 1000
# How long a claim holds before another worker may take the rows over.
LEASE = timedelta(minutes=5)


def deferred_relations() -> dict[str, CrossRelation]:
    """Every relation with a deferred action, by its outbox label."""
    return {
        relation_label(field): field
        for field in cross_foreign_keys()
        if is_deferred(field.cross_on_delete)
    }


def outbox_aliases(relations: dict[str, CrossRelation] | None = None) -> list[str]:
    """The databases whose outbox a deferred action (of ``relations``, by
    default every one) may write to."""
    if relations is None:
        relations = deferred_relations()
    return sorted(
        {alias for field in relations.values() for alias in field.target_aliases}
    )


def outbox(alias: str) -> QuerySet[Any]:
    """The outbox rows of ``alias``: ``crossfk.models.PendingCleanup``, by
    name, as in ``crossfk.outbox``."""
    model: Any = apps.get_model("crossfk", "PendingCleanup")
    rows: QuerySet[Any] = model.objects.using(alias)
    return rows


@dataclass
class Progress:
    """What a run of the worker did."""

    batches: int = 0
    finished: int = 0  # outbox rows done with
    rows: Counter[str] = dataclass_field(default_factory=Counter)  # by model label
    timed_out: bool = False
    failures: list[str] = dataclass_field(default_factory=list)  # left pending

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON can hold them (a task's return value)."""
        return {
            "batches": self.batches,
            "finished": self.finished,
            "rows": dict(self.rows),
            "timed_out": self.timed_out,
            "failures": self.failures,
        }


def clean_up(
    aliases: Iterable[str] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_limit: float | None = None,
) -> Progress:
    """Apply the outbox of each alias (by default every one that may hold
    one) in batches, until it is empty or ``time_limit`` seconds have passed."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}.")
    deadline = None if time_limit is None else time.monotonic() + time_limit
    relations = deferred_relations()
    progress = Progress()
    for alias in outbox_aliases(relations) if aliases is None else aliases:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                progress.timed_out = True
                return progress
            if not run_batch(alias, relations, batch_size, progress):
                break
    return progress


def run_batch(
    alias: str,
    relations: dict[str, CrossRelation],
    batch_size: int,
    progress: Progress,
) -> bool:
    """Claim, apply and finish one batch of ``alias``'s outbox; False if
    nothing was left to claim."""
    token = uuid.uuid4()
    claimed = claim(alias, relations, batch_size, token)
    if not claimed:
        return False
    progress.batches += 1
    budget = batch_size
    finished: list[int] = []
    held: list[int] = []
    groups = [(relations[label], rows) for label, rows in grouped(claimed).items()]
    while groups:
        field, rows = groups.pop(0)
        values = [field.target_field.to_python(row.target) for row in rows]
        try:
            done, budget = apply_relation(field, alias, values, budget, progress)
        except IntegrityError as error:  # ProtectedError, RestrictedError too
            if len(rows) > 1:  # Each target on its own: only the failing are held.
                groups[:0] = [(field, [row]) for row in rows]
                continue
            # Kept claimed: retried once the claim lapses, not by each batch.
            held.append(rows[0].pk)
            progress.failures.append(describe_failure(field, alias, values[0], error))
            continue
        if done:
            finished += [row.pk for row in rows]
    if finished:
        outbox(alias).filter(pk__in=finished).delete()
        progress.finished += len(finished)
    # The rest goes back at once: the next batch takes it up again.
    outbox(alias).filter(claimed_by=token).exclude(pk__in=held).update(
        claimed_by=None, claimed_until=None
    )
    return True


def apply_relation(
    field: CrossRelation,
    alias: str,
    values: list[Any],
    budget: int,
    progress: Progress,
) -> tuple[bool, int]:
    """Apply ``field``'s action for the targets ``values`` deleted in
    ``alias``, to at most ``budget`` rows; whether no row is left, and what
    is left of the budget."""
    if budget == 0:
        return False, 0
    revived = existing_targets(field, alias, values)
    pending = [value for value in values if value not in revived]
    for referencing_alias in field.referencing_aliases_for(alias):
        if not pending:
            break
        applied = apply(field, referencing_alias, pending, budget, progress)
        if applied == budget:  # rows may be left, here or in the next alias
            return False, 0
        budget -= applied
    return True, budget


def claim(
    alias: str, relations: dict[str, CrossRelation], batch_size: int, token: uuid.UUID
) -> list[Any]:
    """Take the oldest unclaimed (or lapsed) outbox rows for ``token``."""
    now = timezone.now()
    claimable = outbox(alias).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        relation__in=relations,
    )
    claimed = {"claimed_by": token, "claimed_until": now + LEASE}
    features = connections[alias].features
    if not features.has_select_for_update:
        # SQLite locks no rows: one UPDATE claims. A read, then a write, in
        # one transaction could not take the write lock beside another worker.
        oldest = claimable.order_by("pk").values("pk")[:batch_size]
        if not claimable.filter(pk__in=oldest).update(**claimed):
            return []
    else:
        with transaction.atomic(using=alias):
            candidates = claimable.select_for_update(
                skip_locked=features.has_select_for_update_skip_locked
            ).order_by("pk")
            ids = list(candidates.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return []
            claimable.filter(pk__in=ids).update(**claimed)
    return list(outbox(alias).filter(claimed_by=token).order_by("pk"))


def describe_failure(
    field: CrossRelation, alias: str, value: Any, error: IntegrityError
) -> str:
    message = error.args[0] if error.args else error  # ProtectedError: (message, objs)
    target = field.remote_field.model._meta.object_name
    return f"{relation_label(field)} of {target} {value!r} in '{alias}': {message}"


def grouped(rows: list[Any]) -> dict[str, list[Any]]:
    """Outbox rows by relation."""
    grouped: defaultdict[str, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row.relation].append(row)
    return grouped


def existing_targets(
    field: CrossRelation, alias: str, values: Iterable[Any]
) -> set[Any]:
    """Those of ``values`` that name a target again (a key reused since the
    delete): the rows referring to them are its, and are left alone."""
    target_model = field.remote_field.model
    attname = field.target_field.attname
    return set(
        target_model._base_manager.using(alias)
        .filter(**{f"{attname}__in": IdSet(values, field.target_field)})
        .values_list(attname, flat=True)
    )


def apply(
    field: CrossRelation,
    alias: str,
    values: list[Any],
    limit: int,
    progress: Progress,
) -> int:
    """Apply ``field``'s deferred action to at most ``limit`` rows of ``alias``
    that refer to ``values``; return how many it found."""
    if not values:
        return 0
    model = field.model
    referring = model._base_manager.using(alias).filter(
        **{f"{field.attname}__in": values}
    )
    pks = list(referring.order_by("pk").values_list("pk", flat=True)[:limit])
    if not pks:
        return 0
    # Still referring: a row pointed elsewhere since it was read keeps its
    # value. The ids go as one parameter (an array, a JSON document).
    batch = referring.filter(pk__in=IdSet(pks, model._meta.pk))
    if field.cross_on_delete is DEFERRED_CASCADE:
        progress.rows.update(batch.delete()[1])
    else:
        updated = batch.update(**{field.name: new_value(field)})
        progress.rows[model._meta.label] += updated
    return len(pks)


@dataclass
class Backlog:
    """The pending outbox rows of one relation in one database."""

    relation: str
    alias: str
    pending: int
    oldest: datetime

    def age(self, now: datetime) -> float:
        return (now - self.oldest).total_seconds()


def backlog(aliases: Iterable[str] | None = None) -> list[Backlog]:
    """Pending outbox rows per relation and database, with the oldest."""
    result = []
    for alias in outbox_aliases() if aliases is None else aliases:
        per_relation = (
            outbox(alias)
            .values("relation")
            .annotate(pending=Count("pk"), oldest=Min("deleted_at"))
            .order_by("relation")
        )
        result += [
            Backlog(row["relation"], alias, row["pending"], row["oldest"])
            for row in per_relation
        ]
    return result


def pending_targets(field: CrossRelation, values: Iterable[Any]) -> set[Any]:
    """Those of ``values`` that a delete left to ``field``'s deferred action:
    references to them are pending cleanup, not dangling."""
    if not is_deferred(field.cross_on_delete):
        return set()
    texts = {str(value): value for value in values}
    if not texts:
        return set()
    found: set[str] = set()
    for alias in field.target_aliases:
        found.update(
            outbox(alias)
            .filter(relation=relation_label(field), target__in=list(texts))
            .values_list("target", flat=True)
        )
    return {texts[text] for text in found}
