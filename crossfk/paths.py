"""The one walk of a lookup path: where ``a__b__c`` leaves its database.

Filters (``CrossLookup``), ``select_related()``, ``values()`` and the guard
against joins across databases all ask ``cross_step()``; the rules about
which step crosses (a forward or reverse cross relation; ``pk``; what a
forward path can read from the id column alone) are written here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model
from django.db.models.constants import LOOKUP_SEP

from crossfk.fields import CrossDBForeignKey


def cross_field_of(field: Any) -> CrossDBForeignKey | None:
    """The CrossDBForeignKey behind ``field``, from either end of the relation."""
    if isinstance(field, CrossDBForeignKey):
        return field
    is_reverse = field.is_relation and field.auto_created and not field.concrete
    related = getattr(field, "field", None)
    if is_reverse and isinstance(related, CrossDBForeignKey):
        return related
    return None


@dataclass(frozen=True)
class CrossStep:
    """Where a ``select_related()`` or ``values()`` path leaves its database."""

    prefix: str  # the path up to the cross relation, in this database
    field: CrossDBForeignKey
    is_reverse: bool
    rest: str  # the path after it, in the other database

    @property
    def head(self) -> str:
        """The path up to and including the cross relation."""
        name = self.field.related_query_name() if self.is_reverse else self.field.name
        return LOOKUP_SEP.join(filter(None, [self.prefix, name]))


@lru_cache(maxsize=1024)
def cross_step(model: type[Model], path: str) -> CrossStep | None:
    """The first step of ``path`` that crosses databases, if any.

    Remembered per model and path: every filter, ``values()`` and
    ``select_related()`` asks it, and a model's fields do not change once
    the app registry is ready.
    """
    names, opts = path.split(LOOKUP_SEP), model._meta
    for position, name in enumerate(names):
        try:
            field = opts.pk if name == "pk" else opts.get_field(name)
        except FieldDoesNotExist:
            return None  # A lookup, transform or annotation: Django's to judge.
        cross_field = cross_field_of(field)
        if cross_field is not None:
            return CrossStep(
                prefix=LOOKUP_SEP.join(names[:position]),
                field=cross_field,
                is_reverse=field is not cross_field,
                rest=LOOKUP_SEP.join(names[position + 1 :]),
            )
        related_model = field.related_model
        if related_model is None or isinstance(related_model, str):
            return None
        opts = related_model._meta
    return None


@lru_cache(maxsize=1024)
def reads_own_column(step: CrossStep) -> bool:
    """Whether a forward path reads only the id the relation stores
    (``post``, ``post__id``, ``post__pk``, ``post__in``, ``post__id__gt``):
    Django answers it from its own column."""
    if step.is_reverse:
        return False
    rest = step.rest.split(LOOKUP_SEP) if step.rest else []
    if not rest:
        return True
    target_field = step.field.target_field
    target_names = {target_field.name, target_field.attname}
    if target_field.primary_key:
        target_names.add("pk")  # With to_field, target__pk needs the target.
    if rest[0] in target_names:
        return len(rest) == 1 or target_field.get_lookup(rest[1]) is not None
    return step.field.get_lookup(rest[0]) is not None
