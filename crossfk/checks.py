"""Project-wide checks: crossfk needs its router to place writes and tables."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from crossfk.fields import CrossDBForeignKey
from crossfk.managers import MultiDBManager
from crossfk.routers import PartitionRouter


def uses_crossfk(model) -> bool:
    return any(isinstance(m, MultiDBManager) for m in model._meta.managers) or any(
        isinstance(f, CrossDBForeignKey) for f in model._meta.fields
    )


def router_installed() -> bool:
    for entry in settings.DATABASE_ROUTERS:
        router = import_string(entry) if isinstance(entry, str) else entry
        router_class = router if isinstance(router, type) else type(router)
        if issubclass(router_class, PartitionRouter):
            return True
    return False


@checks.register(checks.Tags.models)
def check_router(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if router_installed():
        return []
    models = [m for m in apps.get_models() if uses_crossfk(m)]
    if not models:
        return []
    return [
        checks.Warning(
            f"{len(models)} model(s) use crossfk, but "
            f"crossfk.routers.PartitionRouter is not in DATABASE_ROUTERS: "
            f"save(), delete() and migrate will use 'default' for them.",
            hint="Add 'crossfk.routers.PartitionRouter' to DATABASE_ROUTERS.",
            id="crossfk.W002",
        )
    ]
