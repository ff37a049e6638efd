"""Writing the outbox of deferred actions, and enqueuing its cleanup.

A delete whose targets have deferred actions (see ``crossfk.deferred``)
calls ``record_deleted_targets()`` inside its atomic block, in the
targets' database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import django
from django.apps import apps
from django.conf import settings
from django.db import transaction

from crossfk.deferred import relation_label
from crossfk.relations import CrossRelation

# The TASKS backend the cleanup task is enqueued on when a delete commits.
DEFAULT_TASK_BACKEND = "default"


def record_deleted_targets(
    alias: str, targets: Mapping[CrossRelation, Iterable[Any]]
) -> None:
    """Write the outbox rows of targets deleted in ``alias``, in its transaction.

    Called inside the delete's atomic block: the rows commit or roll back
    with the delete. When that block commits, the cleanup task is enqueued.
    """
    # By name: crossfk.models' manager imports, through the query layer,
    # the field this module serves.
    PendingCleanup = apps.get_model("crossfk", "PendingCleanup")
    rows = [
        PendingCleanup(relation=relation_label(field), target=str(value))
        for field, values in targets.items()
        for value in values
    ]
    if not rows:
        return
    PendingCleanup.objects.using(alias).bulk_create(rows)
    if django.VERSION >= (6, 0) and task_backend() is not None:
        transaction.on_commit(lambda: enqueue_cleanup(alias), using=alias)


def task_backend() -> str | None:
    """The ``TASKS`` backend the cleanup task goes to; None: not enqueued."""
    return getattr(settings, "CROSSFK_CLEANUP_TASK_BACKEND", DEFAULT_TASK_BACKEND)


def enqueue_cleanup(alias: str) -> None:
    from crossfk.tasks import clean_up_deferred

    clean_up_deferred.using(backend=task_backend()).enqueue(aliases=[alias])
