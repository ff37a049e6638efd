"""Deferred referential actions: the delete records, a worker applies.

A synchronous cascade across databases holds a transaction open on both for
as long as it takes to delete every referencing row: for a target with
millions of them, minutes of locks everywhere. With ``on_delete=
DEFERRED_CASCADE``, ``DEFERRED_SET_NULL`` or ``DEFERRED_SET(value)``,
deleting a target writes one ``crossfk.models.PendingCleanup`` row per
deleted target and relation, in the target's own database and its own
transaction: recorded if and only if the delete commits, and no query goes
to the referencing database. ``crossfk.cleanup`` (the ``crossfk_cleanup``
command, and the task of ``crossfk.tasks`` on Django 6.0+) later applies
the action in small batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crossfk.relations import CrossRelation


def DEFERRED_CASCADE(collector: Any, field: Any, sub_objs: Any, using: str) -> None:
    """Delete the referencing rows later, in ``crossfk_cleanup``'s batches."""
    refuse_outside_crossfk(DEFERRED_CASCADE)


def DEFERRED_SET_NULL(collector: Any, field: Any, sub_objs: Any, using: str) -> None:
    """Set the referencing rows' column to NULL later, in batches."""
    refuse_outside_crossfk(DEFERRED_SET_NULL)


def DEFERRED_SET(value: Any) -> Callable[[Any, Any, Any, str], None]:
    """Set the referencing rows' column to ``value`` later, in batches.

    As Django's ``SET()``: ``value`` is a value, a model instance, or a
    callable, called once per batch.
    """

    def deferred_set(collector: Any, field: Any, sub_objs: Any, using: str) -> None:
        refuse_outside_crossfk(deferred_set)

    deferred_set.lazy_sub_objs = True  # type: ignore[attr-defined]
    deferred_set.deferred_value = value  # type: ignore[attr-defined]
    deferred_set.deconstruct = lambda: (  # type: ignore[attr-defined]
        "crossfk.DEFERRED_SET",
        (value,),
        {},
    )
    return deferred_set


# Django's Collector then hands the actions a queryset it has not read.
DEFERRED_CASCADE.lazy_sub_objs = True  # type: ignore[attr-defined]
DEFERRED_SET_NULL.lazy_sub_objs = True  # type: ignore[attr-defined]
DEFERRED_SET_NULL.deferred_value = None  # type: ignore[attr-defined]


def refuse_outside_crossfk(action: Callable[..., Any]) -> None:
    name = getattr(action, "__name__", "deferred_set").upper()
    raise TypeError(
        f"on_delete={name} applies only to a crossfk.CrossDBForeignKey: an "
        f"ordinary ForeignKey's database carries out its actions itself."
    )


def is_deferred(action: Callable[..., Any]) -> bool:
    """Whether ``action`` is one of crossfk's deferred actions."""
    return action is DEFERRED_CASCADE or hasattr(action, "deferred_value")


def new_value(field: CrossRelation) -> Any:
    """The value a deferred SET_NULL or SET gives the referencing rows now."""
    value = field.cross_on_delete.deferred_value
    return value() if callable(value) else value


def relation_label(field: CrossRelation) -> str:
    """How the outbox names a relation: ``"app_label.Model.field"``."""
    return f"{field.model._meta.label}.{field.name}"
