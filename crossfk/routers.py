"""``PartitionRouter``: route every model to the database(s) it is placed in
(see ``crossfk.placement``)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import models

from crossfk.placement import (
    aliases_of,
    model_aliases,
    partition_for_model,
    placement_for_label,
)


class PartitionRouter:
    """Pin each model to its alias(es) for reads, writes and migrations.

    Instance hints are ignored for a model placed in one alias, on purpose:
    Django's default of following the related instance's database is
    exactly what sends cross-database queries to the wrong server. A model
    placed in several follows its own instance's database, as Django does.
    """

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str:
        return partition_for_model(model, hints.get("instance"))

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str:
        return partition_for_model(model, hints.get("instance"))

    def allow_relation(
        self, obj1: models.Model, obj2: models.Model, **hints: Any
    ) -> bool:
        # A real ForeignKey across partitions would join across servers; keep
        # Django's refusal. CrossDBForeignKey does not ask the router.
        alias_of = partition_for_model  # where each row was read, or goes
        return alias_of(type(obj1), obj1) == alias_of(type(obj2), obj2)

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if model_name is None:
            model = hints.get("model")
            if model is None:
                # RunPython / RunSQL without a model hint (auth's proxy
                # permissions, say) runs where its app's tables are.
                return db in aliases_of(placement_for_label(app_label))
            model_name = model._meta.model_name
        # Historical models lose their managers, so ask the current registry.
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            return db in aliases_of(placement_for_label(app_label, model_name))
        return db in model_aliases(model)
