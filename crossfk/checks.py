"""Project-wide checks: the router, the aliases models are placed in,
``ATOMIC_REQUESTS``, the backends, and the backlog of deferred actions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import DatabaseError, connections, router
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Model
from django.utils import timezone
from django.utils.module_loading import import_string

from crossfk.cleanup import backlog, outbox_aliases
from crossfk.fields import CrossDBForeignKey
from crossfk.locking import SHARED_LOCKS
from crossfk.managers import MultiDBManager
from crossfk.models import PendingCleanup
from crossfk.placement import missing_from_databases
from crossfk.relations import cross_foreign_keys
from crossfk.routers import PartitionRouter


def uses_crossfk(model: type[Model]) -> bool:
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
def check_router(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if router_installed():
        return []
    models = [m for m in apps.get_models() if uses_crossfk(m)]
    if not models:
        return []
    return [
        checks.Error(
            f"{len(models)} model(s) use crossfk, but "
            f"crossfk.routers.PartitionRouter is not in DATABASE_ROUTERS: "
            f"save(), delete() and migrate would use 'default' for them, "
            f"splitting their rows between databases.",
            hint="Add 'crossfk.routers.PartitionRouter' to DATABASE_ROUTERS.",
            id="crossfk.E008",
        )
    ]


@checks.register(checks.Tags.models)
def check_partitions(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Every alias of CROSSFK_PARTITIONS is a key of DATABASES, and every
    label names an installed app or model. (``MultiDBManager.check()``
    checks its own alias.)"""
    aliases = ", ".join(map(repr, settings.DATABASES))
    messages: list[checks.CheckMessage] = []
    partitions = getattr(settings, "CROSSFK_PARTITIONS", {})
    app_labels = {config.label for config in apps.get_app_configs()}
    for label, value in partitions.items():
        problem = missing_from_databases(value)
        if problem is not None:
            messages.append(
                checks.Error(
                    f"CROSSFK_PARTITIONS[{label!r}] is {value!r}, {problem}.",
                    hint=f"Use one of: {aliases}.",
                    id="crossfk.E010",
                )
            )
        if not names_installed(label, app_labels):
            messages.append(
                checks.Warning(
                    f"CROSSFK_PARTITIONS names {label!r}, which is no installed "
                    f"app label or 'app_label.ModelName': it places nothing.",
                    hint="Check the spelling against INSTALLED_APPS and the "
                    "models' names.",
                    id="crossfk.W004",
                )
            )
    return messages


def names_installed(label: str, app_labels: set[str]) -> bool:
    if "." not in label:
        return label in app_labels
    try:
        apps.get_model(label)
    except (LookupError, ValueError):
        return False
    return True


@checks.register(checks.Tags.models)
def check_atomic_requests(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """ATOMIC_REQUESTS on a database that a cross relation connects to another.

    Each such request's writes across the relation would be refused: its
    block covers one database, and crossfk cannot settle the other with it.
    """
    connected = connected_aliases()
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


def connected_aliases() -> set[str]:
    """The databases some cross relation connects to another."""
    return {
        alias
        for field in cross_foreign_keys()
        for alias in (*field.referencing_aliases, *field.target_aliases)
    }


@checks.register(checks.Tags.models)
def check_row_locks(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A database a cross relation connects, on a backend crossfk takes no
    row locks on: a reference written while its target is deleted can be
    left dangling (``crossfk.locking``)."""
    # SQLite is left out: it serializes each database's writers, and its
    # databases are a development or single-process setup, where the
    # race across two is documented rather than warned of at every run.
    flagged = sorted(
        alias
        for alias in connected_aliases()
        if connections[alias].vendor not in {*SHARED_LOCKS, "sqlite"}
    )
    return [
        checks.Warning(
            f"Database '{alias}' uses the {connections[alias].display_name} "
            f"backend, on which crossfk takes no row locks: a reference written "
            f"while another transaction deletes its target can be left "
            f"dangling, and the delete's recheck can miss it.",
            hint="Run 'manage.py crossfk_check' regularly (--fix to repair), or "
            "keep this database on PostgreSQL, MariaDB/MySQL or SQLite.",
            id="crossfk.W006",
        )
        for alias in flagged
    ]


@checks.register(checks.Tags.database)
def check_transactional_tables(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """On MariaDB/MySQL, a table of a cross relation (its referencing model's
    or its target's) in a storage engine without transactions (MyISAM, Aria):
    its rows are neither locked nor rolled back, so ``crossfk.atomic`` can
    settle nothing there.

    A database check, as it reads each database's tables.
    """
    tables_by_alias: dict[str, set[str]] = {}
    for field in cross_foreign_keys():
        for alias in field.referencing_aliases:
            tables_by_alias.setdefault(alias, set()).add(field.model._meta.db_table)
        for alias in field.target_aliases:
            tables_by_alias.setdefault(alias, set()).add(
                field.remote_field.model._meta.db_table
            )
    messages: list[checks.CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        tables = sorted(tables_by_alias.get(alias, ()))
        if connection.vendor != "mysql" or not tables:
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT t.TABLE_NAME, t.ENGINE FROM information_schema.TABLES t "
                "JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE "
                "WHERE t.TABLE_SCHEMA = DATABASE() AND e.TRANSACTIONS <> 'YES' "
                f"AND t.TABLE_NAME IN ({', '.join(['%s'] * len(tables))}) "
                "ORDER BY t.TABLE_NAME",
                tables,
            )
            found = cursor.fetchall()
        messages.extend(
            checks.Warning(
                f"Table {table} in database '{alias}' uses the {engine} storage "
                f"engine, which has no transactions: crossfk can neither lock "
                f"its rows nor roll back what it wrote there, so a failed or "
                f"concurrent write across databases can leave a dangling "
                f"reference.",
                hint=f"ALTER TABLE {table} ENGINE=InnoDB;",
                id="crossfk.W007",
            )
            for table, engine in found
        )
    return messages


@checks.register(checks.Tags.database)
def check_tables(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A model routed to a database whose migrations are applied, but whose
    table is not there: its partition changed after ``migrate`` ran.

    A database check: Django runs it when asked (``migrate``, ``check
    --database``), as it reads each database's table names.
    """
    messages: list[checks.CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        with connection.cursor() as cursor:
            tables = set(connection.introspection.table_names(cursor))
        applied = {app for app, _ in MigrationRecorder(connection).applied_migrations()}
        for model in apps.get_models():
            opts = model._meta
            missing = (
                opts.managed
                and not opts.proxy
                and opts.app_label in applied
                and router.allow_migrate_model(alias, model)
                and opts.db_table not in tables
            )
            if missing:
                messages.append(
                    checks.Warning(
                        f"{opts.label} is placed in database '{alias}', where "
                        f"the migrations of '{opts.app_label}' are applied, "
                        f"but its table {opts.db_table} is not there.",
                        hint=f"Move it: manage.py crossfk_move {opts.label} "
                        f"--to {alias} (or set its partition back).",
                        obj=model,
                        id="crossfk.W005",
                    )
                )
    return messages


@checks.register(checks.Tags.models)
def check_deferred_backlog(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """The outbox of deferred actions: its table, and how old its oldest row is.

    It reads the databases, so it runs in development (``DEBUG``, as
    ``runserver`` has it) and when asked (``check --database``), not in
    production. A database that cannot be reached is left to the checks and
    commands that need it.
    """
    if databases is None and not settings.DEBUG:
        return []
    table = PendingCleanup._meta.db_table
    max_age = getattr(settings, "CROSSFK_CLEANUP_WARN_AGE", 3600)
    now = timezone.now()
    messages: list[checks.CheckMessage] = []
    for alias in outbox_aliases():
        if databases is not None and alias not in databases:
            continue
        try:
            if table not in connections[alias].introspection.table_names():
                messages.append(
                    checks.Error(
                        f"Database '{alias}' holds targets of deferred on_delete "
                        f"actions but not their outbox, table {table}: deleting "
                        f"them fails.",
                        hint="Run manage.py migrate_all: crossfk's migration "
                        "creates the table in every database.",
                        id="crossfk.E014",
                    )
                )
                continue
            pending = backlog([alias])
        except DatabaseError:
            continue
        age = max((row.age(now) for row in pending), default=0)
        if age > max_age:
            messages.append(
                checks.Warning(
                    f"{sum(row.pending for row in pending)} deferred on_delete "
                    f"action(s) are pending in database '{alias}', the oldest "
                    f"for {age:.0f} s (CROSSFK_CLEANUP_WARN_AGE: {max_age} s).",
                    hint="Run manage.py crossfk_cleanup and schedule it (or a "
                    "django.tasks worker); crossfk_cleanup --status monitors it.",
                    id="crossfk.W008",
                )
            )
    return messages
