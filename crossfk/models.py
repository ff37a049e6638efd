"""The outbox of deferred referential actions (see ``crossfk.deferred``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

from django.conf import settings
from django.db import models
from django.utils import timezone

from crossfk.managers import MultiDBManager


class EveryDatabase(Sequence[str]):
    """Every alias of ``DATABASES``, read when the placement is asked for:
    any database may hold deleted targets, so each has an outbox."""

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return tuple(settings.DATABASES)[index]

    def __len__(self) -> int:
        return len(settings.DATABASES)

    def __repr__(self) -> str:
        return "EveryDatabase()"


class PendingCleanup(models.Model):
    """A deleted target whose referencing rows await a deferred action.

    One row per deleted target and relation, in the target's database.
    ``crossfk_cleanup`` claims rows for a while (``claimed_by`` and
    ``claimed_until``), applies the action, and deletes the row once no
    referencing row is left. Its queries name their database: ``using()``.
    """

    relation = models.CharField(max_length=200)  # "app_label.Model.field"
    target = models.TextField()  # the deleted target's value, as text
    deleted_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.UUIDField(null=True)
    claimed_until = models.DateTimeField(null=True)

    objects = MultiDBManager(EveryDatabase())

    class Meta:
        indexes = [
            models.Index(fields=["relation", "deleted_at"], name="crossfk_pending_age"),
        ]

    def __str__(self) -> str:
        return f"{self.relation} -> {self.target} (deleted {self.deleted_at})"
