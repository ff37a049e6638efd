"""``CrossQuerySet``: querysets that answer lookups across databases.

No database can join to a table on another server, so a lookup that crosses a
``CrossDBForeignKey`` (``filter(post__title="Django")``) is split in two: the
target database is asked for the matching ids, and the local column is
filtered on them. Both halves are lazy; the ids are read when the outer query
is compiled. Anything else that would need a join across the boundary
(ordering, ``values()``, ``select_related``) raises ``FieldError`` instead of
sending SQL that names a table the server does not have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import django
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import models
from django.db.models import Prefetch, Q, QuerySet, prefetch_related_objects
from django.db.models.constants import LOOKUP_SEP
from django.db.models.query import ModelIterable
from django.db.models.sql import Query

from crossfk.descriptors import CrossDBForwardDescriptor
from crossfk.fields import CrossDBForeignKey, mark_targets_verified
from crossfk.idsets import IdSet
from crossfk.values import (
    Across,
    CrossValues,
    CrossValuesIterable,
    key_name,
    remote_name,
)

# Django's own depth limit for a bare select_related().
SELECT_RELATED_MAX_DEPTH = 5


def cross_field_of(field) -> CrossDBForeignKey | None:
    """The CrossDBForeignKey behind ``field``, from either end of the relation."""
    if isinstance(field, CrossDBForeignKey):
        return field
    is_reverse = field.is_relation and field.auto_created and not field.concrete
    if is_reverse and isinstance(getattr(field, "field", None), CrossDBForeignKey):
        return field.field
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


def cross_step(model, path: str) -> CrossStep | None:
    """The first step of ``path`` that crosses databases, if any."""
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
        if field.related_model is None:
            return None
        opts = field.related_model._meta
    return None


def reads_local_column(step: CrossStep) -> bool:
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


@dataclass(frozen=True)
class CrossLookup:
    """A lookup path that crosses a CrossDBForeignKey.

    ``prefix`` is the part answered locally (ordinary relations, ending in
    ``__`` when present), ``field`` the crossed relation, ``is_reverse`` the
    direction, and ``remote_lookup`` what the other database must answer.
    """

    prefix: str
    field: CrossDBForeignKey
    is_reverse: bool
    remote_lookup: str

    @classmethod
    def resolve(cls, model, lookup: str, value=None) -> CrossLookup | None:
        """Split ``lookup`` at the relation it crosses; None if it stays local.

        A queryset ``value`` (``post__in=Post.objects.filter(...)``) is read
        in its own database, so it makes any lookup on the relation cross.
        """
        step = cross_step(model, lookup)
        if step is None:
            return None
        prefix = f"{step.prefix}{LOOKUP_SEP}" if step.prefix else ""
        if step.is_reverse:
            return cls(prefix, step.field, True, step.rest)
        rest = step.rest.split(LOOKUP_SEP) if step.rest else []
        if not isinstance(value, (QuerySet, Query)) and reads_local_column(step):
            return None
        if not rest or step.field.get_lookup(rest[0]) is not None:
            # post__in=<queryset>: as Django's RelatedIn, a query that selects
            # nothing names targets; one that selects a column gives values
            # of the target field.
            rest = [selected_target_name(step.field, value), *rest]
        return cls(prefix, step.field, False, LOOKUP_SEP.join(rest))

    @property
    def is_multi_valued(self) -> bool:
        """Whether a row may meet several related rows on this path."""
        return self.is_reverse or bool(self.prefix)

    @property
    def group_key(self) -> tuple:
        return (self.prefix, self.field, self.is_reverse)

    def as_q(self, conditions: list[tuple[str, object]]) -> Q:
        """A local Q on the id column, fed by a lazy query on the other side."""
        field = self.field
        if self.is_reverse:
            return self.reverse_q(conditions)
        target_field = field.target_field
        target_ids = (
            CrossQuerySet(field.remote_field.model, using=field.target_alias)
            .filter(Q(*conditions))
            .values_list(target_field.attname, flat=True)
        )
        local = Q((f"{self.prefix}{field.attname}__in", IdSet(target_ids, field)))
        if matches_missing_row(conditions):
            local |= Q((f"{self.prefix}{field.attname}__isnull", True))
        return local

    def reverse_q(self, conditions) -> Q:
        """Targets that some referencing row matching ``conditions`` refers to.

        Conditions on the relation itself (``links=obj``, ``links__in=[...]``,
        ``links=None``) are conditions on the referencing row's pk.
        """
        field = self.field
        source_queryset = CrossQuerySet(field.model, using=field.referencing_alias)
        opts = field.model._meta
        field_names = {"pk"} | {f.name for f in opts.get_fields()}
        remote_conditions = []
        for lookup, value in conditions:
            if lookup.split(LOOKUP_SEP, 1)[0] not in field_names:
                lookup = LOOKUP_SEP.join(filter(None, ["pk", lookup]))
                value = primary_keys(value)
            remote_conditions.append((lookup, value))
        local = f"{self.prefix}{field.target_field.attname}__in"
        referenced = Q()
        if not all(holds_only_for_null(opts, *c) for c in remote_conditions):
            source_ids = source_queryset.filter(Q(*remote_conditions))
            referenced = Q((local, self.source_id_set(source_ids)))
        if not matches_missing_row(remote_conditions):
            return referenced
        return referenced | self.unreferenced_q(source_queryset)

    def unreferenced_q(self, source_queryset) -> Q:
        """Targets that nothing refers to: what a join's NULLs match too."""
        field = self.field
        every_reference = source_queryset.filter(**{f"{field.attname}__isnull": False})
        referenced_ids = self.source_id_set(every_reference)
        target_attname = field.target_field.attname
        if not self.prefix:
            return ~Q((f"{target_attname}__in", referenced_ids))
        # Behind a multi-valued prefix (Author -> posts -> links), negating
        # the whole path would ask that no post be referenced; the join asks
        # for one post that is not, or for no post at all.
        unreferenced = (
            field.remote_field.model._base_manager.exclude(
                **{f"{target_attname}__in": referenced_ids}
            )
        ).values(target_attname)
        local = f"{self.prefix}{target_attname}"
        return Q((f"{local}__in", unreferenced)) | Q((f"{local}__isnull", True))

    def source_id_set(self, source_queryset) -> IdSet:
        """The targets' ids that the rows of ``source_queryset`` hold."""
        field = self.field
        return IdSet(
            source_queryset.values_list(field.attname, flat=True), field.target_field
        )


def matches_missing_row(conditions: list[tuple[str, object]]) -> bool:
    """Whether every condition holds for the NULLs of a LEFT OUTER JOIN.

    Across a join Django matches rows that have no related row at all when
    the conditions on it hold for NULLs: ``isnull=True``, and ``=None``,
    which Django reads as ``isnull=True``.
    """
    return all(is_null_test(lookup, value) for lookup, value in conditions)


def is_null_test(lookup: str, value: object) -> bool:
    if lookup.rsplit(LOOKUP_SEP, 1)[-1] == "isnull":
        return bool(value)
    # =None, exact=None, iexact=None; any other lookup raises for None.
    return value is None


def holds_only_for_null(opts, lookup: str, value: object) -> bool:
    """Whether no existing row can match: a NULL test of a non-null column."""
    if not is_null_test(lookup, value):
        return False
    name = lookup.split(LOOKUP_SEP)[0]
    field = opts.pk if name == "pk" else opts.get_field(name)
    single_column = lookup in (
        name,
        f"{name}{LOOKUP_SEP}isnull",
        f"{name}{LOOKUP_SEP}exact",
    )
    return single_column and field.concrete and not field.null


def selected_target_name(field: CrossDBForeignKey, query) -> str:
    """What ``field__in=query`` compares with: the target, or what it selects."""
    query = getattr(query, "query", query)
    if isinstance(query, Query) and not query.has_select_fields:
        return "pk"
    return field.target_field.name


def primary_keys(value: object) -> object:
    """``value`` with model instances, alone or in a list, replaced by their pk."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, (list, tuple, set, frozenset)):
        return [primary_keys(item) for item in value]
    return value


# Django 6 reads a negated ``__in`` whose list holds None as "IN (the
# others) OR IS NULL" over the join (#20024); Django 5.2 drops the None.
NEGATED_IN_MATCHES_NULL = django.VERSION >= (6, 0)


def null_as_isnull(lookup: str, value: object) -> Q | None:
    """``lookup__in=[..., None]`` as Django 6 reads it under a negation."""
    if not (NEGATED_IN_MATCHES_NULL and lookup.endswith(f"{LOOKUP_SEP}in")):
        return None
    if not isinstance(value, (list, tuple, set, frozenset)) or None not in value:
        return None
    path = lookup.removesuffix(f"{LOOKUP_SEP}in")
    others = [item for item in value if item is not None]
    return Q((lookup, others)) | Q((f"{path}{LOOKUP_SEP}isnull", True))


def split_cross_lookups(
    model, q: Q, branch_negated: bool = False, current_negated: bool = False
) -> Q:
    """Rewrite every lookup in ``q`` that crosses databases into a local one.

    Lookups on the same relation inside one AND node become a single query
    on the other side, so ``filter(links__url=..., links__title=...)`` keeps
    Django's meaning: one link matching both. Under a negation Django asks
    a subquery per lookup of a multi-valued relation (``exclude(links__url=
    ..., links__title=...)`` excludes posts with such a link and such a
    link), so those are not grouped there.
    """
    branch_negated = branch_negated or q.negated
    current_negated = current_negated != q.negated
    children, groups = [], {}
    for child in q.children:
        if isinstance(child, Q):
            children.append(
                split_cross_lookups(model, child, branch_negated, current_negated)
            )
            continue
        cross = isinstance(child, tuple) and CrossLookup.resolve(model, *child)
        if not cross:
            children.append(child)
        elif current_negated and (rewritten := null_as_isnull(*child)):
            children.append(
                split_cross_lookups(model, rewritten, branch_negated, current_negated)
            )
        elif q.connector == Q.AND and not (branch_negated and cross.is_multi_valued):
            groups.setdefault(cross.group_key, (cross, []))[1].append(
                (cross.remote_lookup, child[1])
            )
        else:
            children.append(cross.as_q([(cross.remote_lookup, child[1])]))
    for cross, conditions in groups.values():
        children.append(cross.as_q(conditions))
    split = Q(*children, _connector=q.connector, _negated=q.negated)
    split.crossfk_split = True  # Query._add_q() meets nested nodes again.
    return split


class CrossQuery(Query):
    """A Query that splits cross-database lookups and refuses cross joins."""

    def _add_q(self, q_object, *args, **kwargs):
        # _add_q, not add_q: a Q inside an expression (an aggregate's filter,
        # When()) is resolved through it too.
        if not getattr(q_object, "crossfk_split", False):
            q_object = split_cross_lookups(self.model, q_object)
        return super()._add_q(q_object, *args, **kwargs)

    def names_to_path(self, names, opts, allow_many=True, fail_on_missing=False):
        path, final_field, targets, rest = super().names_to_path(
            names, opts, allow_many, fail_on_missing
        )
        for position, info in enumerate(path):
            cross_field = cross_field_of(info.join_field)
            if cross_field is None:
                continue
            # A forward step that ends on the target's id is answered by the
            # local column (Django trims the join); anything else would join.
            is_trimmed = (
                info.direct
                and position == len(path) - 1
                and {t.column for t in targets}
                <= {t.column for t in cross_field.foreign_related_fields}
            )
            if not is_trimmed:
                raise FieldError(
                    f"Cannot resolve {LOOKUP_SEP.join(names)!r}: it joins across "
                    f"databases through {cross_field.describe()}, and no "
                    f"database can sort, annotate or aggregate over another's "
                    f"rows. Filter on it, select it with values() or "
                    f"select_related() (each answered by a query to its "
                    f"database), then sort or count in Python; or order by "
                    f"'{cross_field.attname}'."
                )
        return path, final_field, targets, rest


def bare_select_related(model, depth: int = 1) -> list[str]:
    """The paths a bare ``select_related()`` follows: every non-null forward
    relation, as Django does, a cross one included (and ended there)."""
    paths = []
    for field in model._meta.fields:
        follows = (
            field.remote_field is not None
            and not field.null
            and not getattr(field.remote_field, "parent_link", False)
        )
        if not follows:
            continue
        nested = []
        if depth < SELECT_RELATED_MAX_DEPTH and not isinstance(
            field, CrossDBForeignKey
        ):
            nested = bare_select_related(field.related_model, depth + 1)
        paths.extend(
            [f"{field.name}{LOOKUP_SEP}{path}" for path in nested] or [field.name]
        )
    return paths


def forward_descriptor(model, lookup) -> CrossDBForwardDescriptor | None:
    """The descriptor a prefetch ``lookup`` names, when it is just a forward
    cross relation of ``model`` (``"post"``, or ``select_related("post")``)."""
    if isinstance(lookup, CrossSelect) and lookup.queryset is None:
        lookup = lookup.prefetch_through
    if not isinstance(lookup, str) or LOOKUP_SEP in lookup:
        return None
    descriptor = getattr(model, lookup, None)
    return descriptor if isinstance(descriptor, CrossDBForwardDescriptor) else None


# django-stubs' Prefetch has three type parameters, and its mypy plugin
# expects them on every subclass.
ModelT = TypeVar("ModelT", bound=models.Model)
RowT = TypeVar("RowT")
LookupT = TypeVar("LookupT")
QuerySetT = TypeVar("QuerySetT")
ToAttrT = TypeVar("ToAttrT")


class CrossSelect(Prefetch, Generic[LookupT, QuerySetT, ToAttrT]):  # type: ignore[type-arg]
    """A ``select_related()`` path across databases, answered as a prefetch:
    one query per target database, joining there what lives there."""

    step: CrossStep
    rests: tuple[str | None, ...]

    @classmethod
    def of(
        cls, step: CrossStep, rests: tuple[str | None, ...]
    ) -> CrossSelect[str, Any, None]:
        """The prefetch of ``step``, selecting ``rests`` in the target's database."""
        queryset = None
        if rests:
            target = step.field.remote_field.model
            queryset = CrossQuerySet(target).select_related(
                *(rest for rest in rests if rest is not None)
            )
        prefetch = cls(step.head, queryset=queryset)
        prefetch.step, prefetch.rests = step, rests
        return prefetch


class CrossQuerySet(models.QuerySet[ModelT, RowT]):
    """The queryset of ``MultiDBManager``: cross lookups, prefetch, checks."""

    # What values() asks across databases, and the shape it asked for.
    _cross_values: CrossValues | None = None
    _cross_values_shape: type | None = None

    def __init__(self, model=None, query=None, using=None, hints=None):
        super().__init__(model, query or CrossQuery(model), using, hints)

    def _clone(self):
        clone = super()._clone()
        clone._cross_values = self._cross_values
        clone._cross_values_shape = self._cross_values_shape
        return clone

    def _values(self, *fields, **expressions):
        local, across = [], {}
        for name in fields:
            step = cross_step(self.model, name) if isinstance(name, str) else None
            if step is None or reads_local_column(step):
                local.append(name)
                continue
            if step.head not in across:
                across[step.head] = Across(step, key_name(step), CrossQuerySet)
            across[step.head].names[name] = remote_name(step)
        for relation in across.values():
            relation.check_names()
        keys = [a.key for a in across.values() if a.key not in local]
        clone = super()._values(*local, *keys, **expressions)
        # Django ignores select_related() in values(): so do its prefetches.
        clone._prefetch_related_lookups = tuple(
            lookup
            for lookup in clone._prefetch_related_lookups
            if not isinstance(lookup, CrossSelect)
        )
        clone._cross_values = None
        if across:
            names = list(dict.fromkeys([*fields, *expressions]))
            clone._cross_values = CrossValues(names, list(across.values()))
        return clone

    def values(self, *fields, **expressions) -> CrossQuerySet:
        return self.merge_across(super().values(*fields, **expressions))

    def values_list(self, *fields, flat=False, named=False) -> CrossQuerySet:
        return self.merge_across(super().values_list(*fields, flat=flat, named=named))

    @staticmethod
    def merge_across(clone: CrossQuerySet) -> CrossQuerySet:
        """Read the names across databases in a second query per chunk."""
        if clone._cross_values is not None:
            clone._cross_values_shape = clone._iterable_class
            clone._iterable_class = CrossValuesIterable
        return clone

    def select_related(self, *fields: str | None) -> CrossQuerySet:
        """Django's ``select_related()``; a path that crosses databases is
        fetched as a prefetch, one query per database."""
        if fields == (None,):
            clone = super().select_related(None)
            clone._prefetch_related_lookups = tuple(
                lookup
                for lookup in clone._prefetch_related_lookups
                if not isinstance(lookup, CrossSelect)
            )
            return clone
        bare = not fields
        local, across = [], {}
        for path in fields or bare_select_related(self.model):
            step = cross_step(self.model, path)
            if step is None or step.is_reverse:
                local.append(path)  # Django answers, or reports the error.
                continue
            if step.prefix:
                local.append(step.prefix)
            # A bare select_related() goes on with a bare one over there.
            rest = None if bare else step.rest
            across.setdefault(step.head, (step, []))[1].append(rest)
        clone = super().select_related(*local) if local else self._chain()
        return clone.cross_select(across.values())

    def cross_select(self, steps) -> CrossQuerySet:
        """Add a CrossSelect per step, merged with any already there."""
        lookups = list(self._prefetch_related_lookups)
        for step, rests in steps:
            for lookup in lookups:
                if isinstance(lookup, CrossSelect) and lookup.step.head == step.head:
                    lookups.remove(lookup)
                    rests = [*lookup.rests, *rests]
                    break
            wanted = tuple(dict.fromkeys(rest for rest in rests if rest != ""))
            lookups.append(CrossSelect.of(step, wanted))
        clone = self._chain()
        clone._prefetch_related_lookups = tuple(lookups)
        return clone

    def _prefetch_related_objects(self) -> None:
        # A lookup that only names a forward cross relation takes the
        # descriptor's direct path; every other one, and what they share
        # (nesting, Prefetch querysets, to_attr), Django's own machinery.
        lookups = list(self._prefetch_related_lookups)
        if issubclass(self._iterable_class, ModelIterable) and self._result_cache:
            for lookup in list(lookups):
                descriptor = forward_descriptor(self.model, lookup)
                if descriptor is not None:
                    descriptor.prefetch_into(self._result_cache)
                    lookups.remove(lookup)
        prefetch_related_objects(self._result_cache, *lookups)
        self._prefetch_done = True

    def prefetch_cross(self, *lookups: str | Prefetch) -> CrossQuerySet:
        """Prefetch related objects across databases, one query per level.

        The same machinery as ``prefetch_related()``, which crossfk's fields
        answer through Django's prefetch protocol; named for readers who want
        to see where the other database is read.
        """
        return self.prefetch_related(*lookups)

    def enforced_fields(self) -> list[CrossDBForeignKey]:
        """The model's cross relations whose targets writes must find."""
        return [
            field
            for field in self.model._meta.concrete_fields
            if isinstance(field, CrossDBForeignKey) and field.enforce
        ]

    def bulk_create(self, objs: Iterable[models.Model], *args, **kwargs) -> list:
        objs = list(objs)
        # One existence query per relation for the whole batch; the per-row
        # check in pre_save() then has nothing left to do.
        for field in self.enforced_fields():
            field.check_targets_exist(
                (getattr(obj, field.attname) for obj in objs), self.db
            )
            for obj in objs:
                mark_targets_verified(obj, field)
        return super().bulk_create(objs, *args, **kwargs)

    def update(self, **kwargs) -> int:
        for field in self.enforced_fields():
            for name in (field.name, field.attname):
                value = kwargs.get(name)
                if isinstance(value, models.Model):
                    value = getattr(value, field.target_field.attname)
                if value is not None and not hasattr(value, "resolve_expression"):
                    field.check_targets_exist([value], self.db)
        return super().update(**kwargs)
