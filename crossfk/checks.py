"""Project-wide checks: crossfk needs its router to place writes and tables."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from crossfk.fields import CrossDBForeignKey, cross_foreign_keys
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


@checks.register(checks.Tags.models)
def check_atomic_requests(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """ATOMIC_REQUESTS on a database that a cross relation connects to another.

    Each such request's writes across the relation would be refused: its
    block covers one database, and crossfk cannot settle the other with it.
    """
    connected = {
        alias
        for field in cross_foreign_keys()
        for alias in (field.source_alias, field.target_alias)
    }
    flagged = [
        alias
        for alias, options in settings.DATABASES.items()
        if options.get("ATOMIC_REQUESTS") and alias in connected
    ]
    if not flagged:
        return []
    names = ", ".join(map(repr, flagged))
    return [
        checks.Warning(
            f"ATOMIC_REQUESTS is on for {names}, which cross-database foreign "
            f"keys connect to other databases: a request that writes across "
            f"them is refused (CrossDBTransactionError), since that block "
            f"cannot commit or roll back the other database with it.",
            hint="Turn ATOMIC_REQUESTS off and add "
            "'crossfk.middleware.AtomicRequestsMiddleware' last in MIDDLEWARE: "
            "one crossfk.atomic over every database per request.",
            id="crossfk.W003",
        )
    ]
