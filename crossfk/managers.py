"""``MultiDBManager``: a manager that places its model in its database(s)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import models

from crossfk.placement import Placed, missing_from_databases, placement_for_model
from crossfk.query import CrossQuerySet
from crossfk.resolvers import Resolver

# At module level, where django-stubs' plugin can type it.
CrossManager = models.Manager.from_queryset(CrossQuerySet)


class MultiDBManager(Placed, CrossManager[Any]):
    """Place the model in ``placement``: an alias, a list of aliases (a
    database per tenant), or a ``crossfk.Resolver`` (rows spread by key).

    One alias is used without ``using()`` at every call; with
    ``crossfk.routers.PartitionRouter`` installed, ``save()``, ``delete()``
    and migrations follow it. A model in several aliases is used in the one
    ``using()`` or ``crossfk.partition()`` names. ``using()`` and
    ``db_manager()`` override either, as on any manager.
    """

    def __init__(self, placement: str | Sequence[str] | Resolver | None = None) -> None:
        # Related managers subclass the default manager and call __init__()
        # without arguments; they then defer to the router, which answers
        # with the same placement.
        super().__init__()
        self.placement = placement
        self.pinned_alias = placement if isinstance(placement, str) else None
        self._db = self.pinned_alias

    def create(self, **kwargs: Any) -> Any:
        """Django's ``create()``; with no alias named, a new row of a model a
        resolver places goes where ``save()`` puts it: where the resolver
        says, else in the ``crossfk.partition()`` in effect."""
        resolved = isinstance(placement_for_model(self.model), Resolver)
        if self._db is not None or not resolved:
            return super().create(**kwargs)
        instance = self.model(**kwargs)
        instance.save(force_insert=True)
        return instance

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        if self.placement is None:
            return []
        problem = missing_from_databases(self.placement)
        if problem is None:
            return []
        return [
            checks.Error(
                f"{self.model._meta.label}.{self.name} is MultiDBManager"
                f"({self.placement!r}), {problem}.",
                hint=f"Use one of: {', '.join(map(repr, settings.DATABASES))}.",
                obj=self.model,
                id="crossfk.E009",
            )
        ]
