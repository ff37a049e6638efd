"""Which installed fields cross databases.

Several modules ask this (the commit order, the checks, ``crossfk_check``),
and the field's own module imports some of them; the question is answered
here, from the fields' ``crosses_databases`` flag, so that no module needs
to import ``crossfk.fields`` to ask it.
"""

from __future__ import annotations

from django.apps import apps
from django.db import models


def cross_foreign_keys() -> list[models.ForeignKey]:
    """Every CrossDBForeignKey of the installed models, once each.

    Proxies and multi-table children see their parents' fields too; each
    field is listed only on the model whose table holds its column.
    """
    return [
        field
        for model in apps.get_models()
        if not model._meta.proxy
        for field in model._meta.local_concrete_fields
        if getattr(field, "crosses_databases", False)
    ]
