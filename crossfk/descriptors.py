"""Access to the target of a CrossDBForeignKey (``link.post``) and to the
rows that refer to one (``post.links``).

Django's ``ForwardManyToOneDescriptor`` does the caching in
``instance._state.fields_cache``, the ``RelatedObjectDoesNotExist`` type and,
on Django 6.1+, the fetch modes. Only three things differ across databases:
the queryset reads the target's own alias, a missing row is a dangling id
rather than a broken constraint, and assignment does not ask the router
(which rightly refuses real foreign keys between partitions).

The reverse side is Django's related manager, but for one thing: when the
referencing model lives in several databases (a tenant's each) and no
``partition()`` names one, it reads all of them (``crossfk.fanout``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from django.db.models import Model, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ReverseManyToOneDescriptor,
)

from crossfk.fanout import FanOut, fan_out, fans_out, reads_every_alias
from crossfk.idsets import IdSet
from crossfk.parallel import run_per_alias
from crossfk.placement import active_partition, model_aliases, partition
from crossfk.resolvers import in_databases

# django-stubs make the descriptors generic; Django's cannot be subscripted.
if TYPE_CHECKING:
    ForwardDescriptor = ForwardManyToOneDescriptor[Any]
    ReverseDescriptor = ReverseManyToOneDescriptor[Any]
else:
    ForwardDescriptor = ForwardManyToOneDescriptor
    ReverseDescriptor = ReverseManyToOneDescriptor


class CrossDBForwardDescriptor(ForwardDescriptor):
    field: Any  # A CrossDBForeignKey: crossfk.fields imports this module.

    def get_queryset(self, **hints: Any) -> QuerySet[Any]:
        field = self.field
        # A target a resolver places has no one alias: each read names its own.
        alias = None if field.target_resolver is not None else field.target_alias
        queryset: QuerySet[Any] = field.remote_field.model._base_manager.db_manager(
            alias, hints=hints
        ).all()
        instance = hints.get("instance")
        if instance is not None and hasattr(instance._state, "fetch_mode"):
            # Django 6.1+: related objects inherit the instance's fetch mode.
            queryset = queryset.fetch_mode(instance._state.fetch_mode)  # type: ignore[attr-defined]
        return queryset

    def __get__(self, instance: Model | None, cls: type[Model] | None = None) -> Any:
        if instance is not None:
            # The cached read, at Django's own cost: no extra frame around it.
            cached = instance._state.fields_cache.get(self.field.cache_name)
            if cached is not None:
                return cached
        try:
            return super().__get__(instance, cls)
        except self.RelatedObjectDoesNotExist:
            # A prefetch found no target for a non-null id: still a dangling
            # id, to be named as such rather than "Link has no post."
            if instance is None or getattr(instance, self.field.attname) is None:
                raise
            raise self.RelatedObjectDoesNotExist(
                self.dangling_message(instance)
            ) from None

    def get_object(self, instance: Model) -> Model:
        if self.field.target_resolver is not None:
            return self.get_resolved_object(instance)
        try:
            return super().get_object(instance)
        except self.field.remote_field.model.DoesNotExist:
            raise self.RelatedObjectDoesNotExist(
                self.dangling_message(instance)
            ) from None

    def get_resolved_object(self, instance: Model) -> Model:
        """The target a resolver places, read where it says (one query, or
        one per alias for ``Scatter``)."""
        field = self.field
        ids_by_alias = field.target_ids_of([instance])
        queryset = self.get_queryset(instance=instance)
        targets = field.read_targets(ids_by_alias, queryset)
        if not targets:
            raise self.RelatedObjectDoesNotExist(
                self.dangling_message(instance, tuple(ids_by_alias))
            )
        target: Model = targets[0]
        return target

    def dangling_message(
        self, instance: Model, aliases: tuple[str, ...] | None = None
    ) -> str:
        field = self.field
        if aliases is None:
            aliases = tuple(field.target_ids_of([instance]))
        target = field.remote_field.model._meta.object_name
        return (
            f"{field.describe()} of {instance._meta.object_name} "
            f"{instance.pk!r} refers to {target} with "
            f"{field.target_field.attname} {getattr(instance, field.attname)!r}, "
            f"which does not exist in {in_databases(aliases)}."
        )

    def get_prefetch_querysets(
        self, instances: list[Model], querysets: list[QuerySet[Any]] | None = None
    ) -> tuple[QuerySet[Any], Callable[..., Any], Callable[..., Any], bool, str, bool]:
        """Fetch every instance's target in one query on the target's alias."""
        if querysets and len(querysets) != 1:
            raise ValueError(
                "querysets argument of get_prefetch_querysets() should have a "
                "length of 1."
            )
        field = self.field
        if field.target_resolver is not None:
            return self.resolved_prefetch(instances, querysets)
        if querysets:
            queryset = querysets[0]
            if queryset._db is None:  # type: ignore[attr-defined]
                queryset = queryset.using(field.target_alias)
        else:
            queryset = self.get_queryset(instance=instances[0])
        target_field = field.target_field
        ids = IdSet(
            [getattr(instance, field.attname) for instance in instances], target_field
        )
        queryset = queryset.filter(**{f"{target_field.attname}__in": ids})
        # One target per instance: ordering would only cost the database time.
        queryset.query.clear_ordering()
        # One column each side: the values themselves as keys, not the
        # one-element tuples Django's generic getters build per instance.
        return (
            queryset,
            attrgetter(target_field.attname),
            attrgetter(field.attname),
            True,
            field.cache_name,
            False,
        )

    def resolved_prefetch(
        self, instances: list[Model], querysets: list[QuerySet[Any]] | None
    ) -> tuple[Any, Callable[..., Any], Callable[..., Any], bool, str, bool]:
        """``get_prefetch_querysets()`` for a target a resolver places: the
        rows already read, one query per alias holding some, each
        evaluating its own prefetches there."""
        field = self.field
        queryset = querysets[0] if querysets else None
        targets = self.read_targets_of(instances, queryset)
        return (
            targets,
            field.target_key(),
            field.reference_key(),
            True,
            field.cache_name,
            False,
        )

    def read_targets_of(
        self, instances: list[Model], queryset: QuerySet[Any] | None = None
    ) -> list[Model]:
        """The targets of ``instances`` a resolver places, from ``queryset``
        (the relation's own by default); a queryset that names its alias is
        read there alone."""
        field = self.field
        if queryset is None:
            queryset = self.get_queryset(instance=instances[0])
        pinned = queryset._db  # type: ignore[attr-defined]
        if pinned is None:
            ids_by_alias = field.target_ids_of(instances)
        else:
            values = {getattr(obj, field.attname) for obj in instances} - {None}
            ids_by_alias = {pinned: list(values)} if values else {}
        return field.read_targets(ids_by_alias, queryset)  # type: ignore[no-any-return]

    def prefetch_into(self, instances: list[Model]) -> None:
        """``prefetch_related(<this relation>)`` on ``instances``, without the
        generic steps of Django's machinery: the instances whose target is
        not cached yet get theirs from one query, or None for a dangling id."""
        field = self.field
        cache_name, attname = field.cache_name, field.attname
        pending = [
            obj for obj in instances if cache_name not in obj._state.fields_cache
        ]
        if pending and field.target_resolver is not None:
            target_key, reference_key = field.target_key(), field.reference_key()
            by_key = {target_key(t): t for t in self.read_targets_of(pending)}
            for obj in pending:
                obj._state.fields_cache[cache_name] = by_key.get(reference_key(obj))
            return
        ids = {getattr(obj, attname) for obj in pending} - {None}
        targets: dict[Any, Model] = {}
        if ids:
            target_attname = field.target_field.attname
            queryset = self.get_queryset(instance=pending[0]).filter(
                **{f"{target_attname}__in": IdSet(ids, field.target_field)}
            )
            queryset.query.clear_ordering()
            targets = {getattr(target, target_attname): target for target in queryset}
        for obj in pending:
            obj._state.fields_cache[cache_name] = targets.get(getattr(obj, attname))

    def __set__(self, instance: Model, value: Model | None) -> None:
        # Django's own assignment, less two router calls: allow_relation()
        # rightly refuses real foreign keys between partitions, and
        # db_for_write(instance=value) would place the instance in its
        # target's database. As in Django, an unsaved target or None is
        # accepted here and refused at save().
        field = self.field
        target_model = field.remote_field.model
        if value is not None and not isinstance(
            value, target_model._meta.concrete_model
        ):
            raise ValueError(
                f'Cannot assign "{value!r}": "{instance._meta.object_name}.'
                f'{field.name}" must be a "{target_model._meta.object_name}" '
                f"instance."
            )
        for local_field, target_field in field.related_fields:
            setattr(
                instance,
                local_field.attname,
                None if value is None else getattr(value, target_field.attname),
            )
        field.set_cached_value(instance, value)


class CrossDBReverseDescriptor(ReverseDescriptor):
    """``post.links``: Django's related manager, fanned out over every
    database of the referencing model when no partition names one."""

    @cached_property
    def related_manager_cls(self) -> type[Any]:
        return fanned_out_related_manager(super().related_manager_cls)


def fanned_out_related_manager(related_manager: type[Any]) -> type[Any]:
    class CrossRelatedManager(related_manager):  # type: ignore[misc]
        def reads_one_alias(self) -> bool:
            """Whether the rows are read in one database: one is named, the
            model has one, or the rows sit in their target's (the router
            follows the instance there)."""
            return (
                self._db is not None
                or not reads_every_alias(self.model)
                or self.field.target_is_local
            )

        def get_queryset(self) -> Any:
            # Prefetched rows first, as Django's own does: a read of them
            # costs no lookup of where the model lives.
            prefetched = getattr(self.instance, "_prefetched_objects_cache", {})
            cache_name = self.field.remote_field.cache_name
            if cache_name in prefetched:
                return prefetched[cache_name]
            if self.reads_one_alias():
                return super().get_queryset()
            aliases = model_aliases(self.model)
            # Django reads a database's features to build the filter: any
            # of the model's answers. No partition names one: all are read.
            with partition(active_partition_of(aliases)):
                queryset = super().get_queryset()
            return fan_out(queryset)

        def get_prefetch_querysets(
            self, instances: list[Model], querysets: Any = None
        ) -> tuple[Any, ...]:
            parent: Any = super()
            if self.field.target_is_local and self._db is None:
                return prefetch_in_own_aliases(
                    parent.get_prefetch_querysets, instances, querysets
                )
            if self.reads_one_alias():
                return tuple(parent.get_prefetch_querysets(instances, querysets))

            def in_alias(alias: str) -> tuple[Any, ...]:
                # Django's reads its queryset (it caches each row's target).
                with partition(alias):
                    return tuple(parent.get_prefetch_querysets(instances, querysets))

            by_alias = run_per_alias(in_alias, model_aliases(self.model))
            first = next(iter(by_alias.values()))
            rows = FanOut(first[0])
            rows._result_cache = [
                row for found in by_alias.values() for row in found[0]
            ]
            return (rows, *first[1:])

    return CrossRelatedManager


def prefetch_in_own_aliases(
    get_prefetch_querysets: Callable[..., Any],
    instances: list[Model],
    querysets: Any,
) -> tuple[Any, ...]:
    """Django's reverse prefetch (``get_prefetch_querysets``) for the
    instances of each alias, in that alias (the router follows the first
    instance's), matched by alias and id: for a target local to each
    database (``SameAsSource``), ids repeat from one to the next."""
    by_alias: defaultdict[str, list[Model]] = defaultdict(list)
    for instance in instances:
        by_alias[str(instance._state.db)].append(instance)
    found = run_per_alias(
        lambda alias: tuple(get_prefetch_querysets(by_alias[alias], querysets)),
        by_alias,
    )
    first = next(iter(found.values()))
    rows = [row for answer in found.values() for row in answer[0]]
    row_key, instance_key = first[1], first[2]
    return (
        rows,
        lambda row: (row._state.db, *row_key(row)),
        lambda instance: (instance._state.db, *instance_key(instance)),
        *first[3:],
    )


def active_partition_of(aliases: tuple[str, ...]) -> str:
    """The partition in effect if it is one of ``aliases``, else the first."""
    active = active_partition()
    return active if active in aliases else aliases[0]


def reverse_cross_field(model: type[Model], lookup: object) -> Any:
    """The CrossDBForeignKey whose reverse accessor ``lookup`` is, when the
    lookup names just that (``"links"``); else None."""
    if not isinstance(lookup, str) or LOOKUP_SEP in lookup:
        return None
    descriptor = getattr(model, lookup, None)
    if not isinstance(descriptor, ReverseManyToOneDescriptor):
        return None
    field = descriptor.field
    return field if getattr(field, "crosses_databases", False) else None


def prefetch_reverse_into(instances: list[Model], field: Any) -> list[Model] | None:
    """``prefetch_related(<the reverse of field>)`` on ``instances``, without
    the per-row steps of Django's machinery; None, leaving it to Django,
    when the referencing model's default queryset prefetches more.

    The instances whose relation is not prefetched yet get, from one query,
    their related manager's own queryset holding their rows, each row with
    its target cached, as Django's ``prefetch_one_level()`` leaves them.

    Returns the rows a nested lookup (``links__tags``) descends into, as
    Django's ``prefetch_related_objects()`` chooses them: the rows just
    fetched, or, when every instance had its rows already, those.
    """
    rel = field.remote_field
    cache_name, accessor = rel.cache_name, rel.get_accessor_name()
    pending = [
        obj
        for obj in instances
        if cache_name not in getattr(obj, "_prefetched_objects_cache", ())
    ]
    if not pending:
        caches = [obj._prefetched_objects_cache for obj in instances]  # type: ignore[attr-defined]
        return [row for cache in caches for row in cache[cache_name]]
    queryset: QuerySet[Any] = field.model._default_manager.get_queryset()
    if queryset._prefetch_related_lookups:  # type: ignore[attr-defined]
        return None
    if field.target_is_local:
        rows = referencing_rows_in_own_aliases(queryset, field, pending)
    else:
        rows = referencing_rows(queryset, field, pending)
    rows_by_key: defaultdict[Any, list[Model]] = defaultdict(list)
    reference_key, target_key = field.reference_key(), field.target_key()
    for row in rows:
        rows_by_key[reference_key(row)].append(row)
    forward_cache = field.cache_name
    for obj in pending:
        obj_rows = rows_by_key.get(target_key(obj), [])
        for row in obj_rows:
            row._state.fields_cache[forward_cache] = obj
        if not hasattr(obj, "_prefetched_objects_cache"):
            obj._prefetched_objects_cache = {}  # type: ignore[attr-defined]
        related = getattr(obj, accessor).get_queryset()
        related._result_cache, related._prefetch_done = obj_rows, True
        obj._prefetched_objects_cache[cache_name] = related  # type: ignore[attr-defined]
    return rows


def referencing_rows(
    queryset: QuerySet[Any], field: Any, targets: list[Model]
) -> list[Model]:
    """The rows of ``queryset`` that refer to ``targets``: one query, or one
    per database of a model in several that no partition names."""
    keys = {getattr(obj, field.target_field.attname) for obj in targets} - {None}
    if not keys:
        return []
    queryset._add_hints(instance=targets[0])  # type: ignore[attr-defined]
    queryset = queryset.filter(
        **{f"{field.attname}__in": IdSet(keys, field.target_field)}
    )
    return list(fan_out(queryset) if fans_out(queryset) else queryset)


def referencing_rows_in_own_aliases(
    queryset: QuerySet[Any], field: Any, targets: list[Model]
) -> list[Model]:
    """The rows of ``queryset`` that refer to ``targets``, each target's in
    its own database (``SameAsSource``): one query per database."""
    by_alias: defaultdict[str, list[Model]] = defaultdict(list)
    for target in targets:
        by_alias[str(target._state.db)].append(target)
    found = run_per_alias(
        lambda alias: referencing_rows(queryset.using(alias), field, by_alias[alias]),
        by_alias,
    )
    return [row for rows in found.values() for row in rows]
