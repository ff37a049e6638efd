"""The admin: cross relations in ``list_display`` without a query per row.

The changelist joins the relations it displays (``select_related()``); no
join reaches another database, so ``CrossDBAdminMixin`` prefetches the cross
relations it displays instead: one query per database for the whole page.
Widgets (select, ``raw_id_fields``, ``autocomplete_fields``), ``list_filter``,
``search_fields`` and the delete confirmation need nothing more: they read
the target through the router, which knows its database.
"""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist

from crossfk.fields import CrossDBForeignKey


def is_cross_relation(model, name) -> bool:
    try:
        return isinstance(model._meta.get_field(name), CrossDBForeignKey)
    except (FieldDoesNotExist, TypeError):  # callables and admin methods
        return False


class CrossDBChangeList(ChangeList):
    def apply_select_related(self, queryset):
        shown = [
            name for name in self.list_display if is_cross_relation(self.model, name)
        ]
        if isinstance(self.list_select_related, (list, tuple)):
            shown += [
                name
                for name in self.list_select_related
                if is_cross_relation(self.model, name)
            ]
            self.list_select_related = [
                name for name in self.list_select_related if name not in shown
            ]
        queryset = super().apply_select_related(queryset)
        return queryset.prefetch_related(*dict.fromkeys(shown))

    def get_select_related_fields(self):
        # Django 6.1+ names the relations of list_display instead of calling
        # a bare select_related(): the cross ones are prefetched above.
        return [
            name
            for name in super().get_select_related_fields()
            if not is_cross_relation(self.model, name)
        ]


class CrossDBAdminMixin:
    """Mix into a ModelAdmin whose model has CrossDBForeignKeys."""

    def get_changelist(self, request, **kwargs):
        return CrossDBChangeList


class CrossDBModelAdmin(CrossDBAdminMixin, admin.ModelAdmin):
    pass
