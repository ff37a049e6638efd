"""``MultiDBManager``: a manager that pins its model to one database alias."""

from __future__ import annotations

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
