"""``MultiDBManager``: a manager that pins its model to one database alias."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.db import models

from crossfk.query import CrossQuerySet


class MultiDBManager(models.Manager.from_queryset(CrossQuerySet)):
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
        self.alias = alias
        self._db = alias

    def check(self, **kwargs) -> list[checks.CheckMessage]:
        if self.alias is None or self.alias in settings.DATABASES:
            return []
        return [
            checks.Error(
                f"{self.model._meta.label}.{self.name} is MultiDBManager"
                f"({self.alias!r}), which is not a key of DATABASES.",
                hint=f"Use one of: {', '.join(map(repr, settings.DATABASES))}.",
                obj=self.model,
                id="crossfk.E009",
            )
        ]
