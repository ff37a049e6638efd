"""The outbox of deferred referential actions (see ``crossfk.deferred``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from crossfk.placement import Placed


class EveryDatabaseManager(Placed, models.Manager["PendingCleanup"]):
    """Places its model in every database: any may hold deleted targets.

    Its queries name their database: ``using(alias)``.
    """

    @property  # type: ignore[override]
    def placement(self) -> tuple[str, ...]:
        return tuple(settings.DATABASES)


class PendingCleanup(models.Model):
    """A deleted target whose referencing rows await a deferred action.

    One row per deleted target and relation, in the target's database.
    ``crossfk_cleanup`` claims rows for a while (``claimed_by`` and
    ``claimed_until``), applies the action, and deletes the row once no
    referencing row is left.
    """

    relation = models.CharField(max_length=200)  # "app_label.Model.field"
    target = models.TextField()  # the deleted target's value, as text
    deleted_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.UUIDField(null=True)
    claimed_until = models.DateTimeField(null=True)

    objects = EveryDatabaseManager()

    class Meta:
        indexes = [
            models.Index(fields=["relation", "deleted_at"], name="crossfk_pending_age"),
        ]

    def __str__(self) -> str:
        return f"{self.relation} -> {self.target} (deleted {self.deleted_at})"
