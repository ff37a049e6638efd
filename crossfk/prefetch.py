"""Prefetching across databases through Django's own prefetch machinery.

CrossDBForeignKey's descriptors speak Django's prefetch protocol, so
``prefetch_related_objects`` already fetches each level with one query per
target database; these names make that entry point explicit.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Model, Prefetch, prefetch_related_objects


class CrossPrefetch(Prefetch):
    """``Prefetch(lookup, queryset=None, to_attr=None)`` for cross relations.

    The queryset may come from any manager of the related model; it is read
    from that model's own database.
    """


def prefetch_cross(instances: Iterable[Model], *lookups: str | Prefetch) -> list:
    """Prefetch ``lookups`` onto instances already in memory; return them."""
    instances = list(instances)
    prefetch_related_objects(instances, *lookups)
    return instances
