"""Which installed fields cross databases, and what the other modules may
ask of one.

Several modules ask this (the commit order, the checks, ``crossfk_check``),
and the field's own module imports some of them; the question is answered
here, from the fields' ``crosses_databases`` flag, so that no module needs
to import ``crossfk.fields`` to ask it. ``CrossRelation`` names, for type
checkers, the part of ``CrossDBForeignKey`` those modules use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from django.apps import apps
from django.db import models


class CrossRelation(Protocol):
    """A ``CrossDBForeignKey``, as the modules below ``crossfk.fields`` see it."""

    model: type[models.Model]
    name: str
    attname: str
    null: bool
    remote_field: Any
    crosses_databases: bool
    cross_on_delete: Any  # the on_delete it was declared with

    @property
    def target_field(self) -> Any: ...
    @property
    def target_alias(self) -> str: ...
    @property
    def referencing_alias(self) -> str: ...
    @property
    def target_aliases(self) -> tuple[str, ...]: ...
    @property
    def referencing_aliases(self) -> tuple[str, ...]: ...
    @property
    def target_is_local(self) -> bool: ...
    def describe(self) -> str: ...
    def set_cached_value(self, instance: models.Model, value: Any) -> None: ...
    def target_ids_by_alias(
        self, ids_by_referencing_alias: Mapping[str | None, Iterable[Any]]
    ) -> dict[str, list[Any]]: ...
    def referencing_aliases_for(self, target_alias: str) -> tuple[str, ...]: ...
    def found_target_ids(
        self, ids_by_alias: Mapping[str, list[Any]], *, lock: bool = True
    ) -> set[Any]: ...
    def missing_target_ids(
        self, values: Iterable[Any], referencing_alias: str | None = None
    ) -> list[Any]: ...


def cross_foreign_keys() -> list[CrossRelation]:
    """Every CrossDBForeignKey of the installed models, once each.

    Proxies and multi-table children see their parents' fields too; each
    field is listed only on the model whose table holds its column.
    """
    return [
        field  # type: ignore[misc]  # the flag says it is one
        for model in apps.get_models()
        if not model._meta.proxy
        for field in model._meta.local_concrete_fields
        if getattr(field, "crosses_databases", False)
    ]
