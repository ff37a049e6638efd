"""Route every model to the database that holds its table (its partition)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, models

from crossfk.managers import MultiDBManager


def declared_alias(model: type[models.Model]) -> str | None:
    """The alias a model's ``MultiDBManager`` pins it to, if it has one."""
    for manager in model._meta.managers:
        if isinstance(manager, MultiDBManager) and manager.pinned_alias:
            return manager.pinned_alias
    return None


def partition_for_label(app_label: str, model_name: str | None = None) -> str:
    """The alias ``CROSSFK_PARTITIONS`` gives a model (``"app.Model"``) or app."""
    # Read at use time so that override_settings() applies.
    partitions = getattr(settings, "CROSSFK_PARTITIONS", {})
    if model_name is not None:
        for label, alias in partitions.items():
            if "." in label and label.lower() == f"{app_label}.{model_name}".lower():
                return str(alias)
    return str(partitions.get(app_label, DEFAULT_DB_ALIAS))


def partition_for_model(model: type[models.Model]) -> str:
    """The alias a model lives in: its manager, else the settings, else default."""
    opts = model._meta
    owner = opts.auto_created
    if isinstance(owner, type):  # A many-to-many through table lives with it.
        return partition_for_model(owner)
    return declared_alias(model) or partition_for_label(opts.app_label, opts.model_name)


class PartitionRouter:
    """Pin each model to one alias for reads, writes and migrations.

    Instance hints are ignored on purpose: Django's default of following the
    related instance's database is exactly what sends cross-database queries
    to the wrong server.
    """

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str:
        return partition_for_model(model)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str:
        return partition_for_model(model)

    def allow_relation(
        self, obj1: models.Model, obj2: models.Model, **hints: Any
    ) -> bool:
        # A real ForeignKey across partitions would join across servers; keep
        # Django's refusal. CrossDBForeignKey does not ask the router.
        return partition_for_model(type(obj1)) == partition_for_model(type(obj2))

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if model_name is None:
            model = hints.get("model")
            if model is None:
                # RunPython / RunSQL without a model hint (auth's proxy
                # permissions, say) runs where its app's tables are.
                return db == partition_for_label(app_label)
            model_name = model._meta.model_name
        # Historical models lose their managers, so ask the current registry.
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            return db == partition_for_label(app_label, model_name)
        return db == partition_for_model(model)
