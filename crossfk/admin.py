"""The admin needs nothing of its own for cross relations.

A plain ``ModelAdmin`` works: ``select_related()`` across databases is
answered as a prefetch (``list_display``, ``list_select_related``); the
widgets (select, ``raw_id_fields``, ``autocomplete_fields``), ``list_filter``
and ``search_fields`` read the target through the router, which knows its
database; the delete confirmation lists the rows of every database. Deletes
and inline writes that span databases need
``crossfk.middleware.AtomicRequestsMiddleware``.

``CrossDBModelAdmin`` only brings Django 6.1's changelist to Django 5.2:
the relations ``list_display`` shows are selected by name, nullable ones
too, where 5.2's bare ``select_related()`` follows non-null ones only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model, QuerySet
from django.http import HttpRequest


def is_forward_relation(model: type[Model], name: str) -> bool:
    try:
        field = model._meta.get_field(name)
    except (FieldDoesNotExist, TypeError):  # callables and admin methods
        return False
    return bool(field.many_to_one) and name != getattr(field, "attname", None)


class CrossDBChangeList(ChangeList):
    def apply_select_related(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        shown = [
            name
            for name in self.list_display
            if isinstance(name, str) and is_forward_relation(self.model, name)
        ]
        if self.list_select_related is False and shown:
            return queryset.select_related(*shown)
        return super().apply_select_related(queryset)


class CrossDBAdminMixin:
    """Mix into a ModelAdmin to select the relations ``list_display`` shows."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CrossDBChangeList


class CrossDBModelAdmin(CrossDBAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    pass
