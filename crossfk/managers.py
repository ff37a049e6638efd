"""``MultiDBManager``: a manager that pins its model to one database alias."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.db import models

from crossfk.query import CrossQuerySet

# At module level, where django-stubs' plugin can type it.
CrossManager = models.Manager.from_queryset(CrossQuerySet)


class MultiDBManager(CrossManager[Any]):
    """Read from and write to ``alias`` without ``using()`` at every call.

    With ``crossfk.routers.PartitionRouter`` installed, ``save()``, ``delete()``
    and migrations follow the same alias. ``using()`` and ``db_manager()``
    still override it, as on any manager.
    """

    def __init__(self, alias: str | None = None) -> None:
        # Related managers subclass the default manager and call __init__()
        # without arguments; they then defer to the router, which answers
        # with the same alias.
        super().__init__()
        self.pinned_alias = alias
        self._db = alias

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        if self.pinned_alias is None or self.pinned_alias in settings.DATABASES:
            return []
        return [
            checks.Error(
                f"{self.model._meta.label}.{self.name} is MultiDBManager"
                f"({self.pinned_alias!r}), which is not a key of DATABASES.",
                hint=f"Use one of: {', '.join(map(repr, settings.DATABASES))}.",
                obj=self.model,
                id="crossfk.E009",
            )
        ]
