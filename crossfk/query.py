"""``CrossQuerySet``: querysets that answer lookups across databases.

No database can join to a table on another server, so a lookup that crosses a
``CrossDBForeignKey`` (``filter(post__title="Django")``) is split in two: the
target database is asked for the matching ids, and the id column is
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
from django.core.exceptions import FieldError
from django.db import models
from django.db.models import Prefetch, Q, QuerySet, prefetch_related_objects
from django.db.models.constants import LOOKUP_SEP
from django.db.models.options import Options
from django.db.models.query import BaseIterable, ModelIterable
from django.db.models.sql import Query

from crossfk.descriptors import (
    CrossDBForwardDescriptor,
    prefetch_reverse_into,
    reverse_cross_field,
)
from crossfk.fanout import WhereItLives
from crossfk.fields import CrossDBForeignKey, mark_targets_verified
from crossfk.idsets import BesideTheQuery, IdSet, OwnColumnIn
from crossfk.paths import CrossStep, cross_field_of, cross_step, reads_own_column
from crossfk.placement import sole_alias
from crossfk.values import (
    Across,
    CrossValues,
    CrossValuesIterable,
    key_name,
    name_across,
)

# Django's own depth limit for a bare select_related().
SELECT_RELATED_MAX_DEPTH = 5


@dataclass(frozen=True)
class CrossLookup:
    """A lookup path that crosses a CrossDBForeignKey.

    ``prefix`` is the part answered in the queryset's own database
    (ordinary relations, ending in ``__`` when present), ``field`` the
    crossed relation, ``is_reverse`` the direction, and ``lookup_across``
    what the other database must answer.
    """

    prefix: str
    field: CrossDBForeignKey
    is_reverse: bool
    lookup_across: str

    @classmethod
    def resolve(
        cls, model: type[models.Model], lookup: str, value: object = None
    ) -> CrossLookup | None:
        """Split ``lookup`` at the relation it crosses; None if it stays in
        the queryset's own database.

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
        if not isinstance(value, (QuerySet, Query)) and reads_own_column(step):
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
    def group_key(self) -> tuple[str, CrossDBForeignKey, bool]:
        return (self.prefix, self.field, self.is_reverse)

    def as_q(
        self,
        conditions: list[tuple[str, object]],
        own_table: type[models.Model] | None = None,
    ) -> Q | tuple[str, IdSet] | OwnColumnIn:
        """A condition on the id column, fed by a lazy query in the other
        database: a lookup, or a Q when a missing row matches too.

        ``own_table``: the concrete model of the queryset, when no negation
        is above; a column on its table is then given as its lookup already.
        """
        field = self.field
        if self.is_reverse:
            return self.reverse_q(conditions)
        target = field.remote_field.model
        # Split here, where the conditions are known to be the target's: a
        # plain query then runs them, without a second walk of each, and
        # without the clones of filter() and values_list().
        target_ids = Query(target)
        target_ids.add_q(split_cross_lookups(target, Q(*conditions)))
        # The one column, as add_fields() would select it, without its walk;
        # in no order, as a set of ids needs none.
        target_column = field.target_field.get_col(target_ids.get_initial_alias())
        target_ids.set_select([target_column])
        target_ids.clear_ordering(force=True)
        ids = IdSet(field.target_values(target_ids), field)
        column = f"{self.prefix}{field.attname}"
        ids_in = (f"{column}__in", ids)
        if matches_missing_row(conditions):
            return SplitQ(ids_in, (f"{column}__isnull", True), _connector=Q.OR)
        if not self.prefix and field.model._meta.concrete_model is own_table:
            return OwnColumnIn(field, ids)
        return ids_in

    def reverse_q(self, conditions: list[tuple[str, object]]) -> Q:
        """Targets that some referencing row matching ``conditions`` refers to.

        Conditions on the relation itself (``links=obj``, ``links__in=[...]``,
        ``links=None``) are conditions on the referencing row's pk.
        """
        field = self.field
        # A model in several databases is read where the partition in effect
        # says, else in all of them, when the ids are read (WhereItLives).
        referencing_rows: CrossQuerySet[Any, Any] = CrossQuerySet(
            field.model, using=sole_alias(field.referencing_aliases)
        )
        opts = field.model._meta
        field_names = {"pk"} | {f.name for f in opts.get_fields()}
        conditions_across = []
        for lookup, value in conditions:
            if lookup.split(LOOKUP_SEP, 1)[0] not in field_names:
                lookup = LOOKUP_SEP.join(filter(None, ["pk", lookup]))
                value = primary_keys(value)
            conditions_across.append((lookup, value))
        column_in = f"{self.prefix}{field.target_field.attname}__in"
        referenced = Q()
        if not all(holds_only_for_null(opts, *c) for c in conditions_across):
            matching_rows = referencing_rows.filter(Q(*conditions_across))
            referenced = Q((column_in, self.referenced_id_set(matching_rows)))
        if not matches_missing_row(conditions_across):
            return referenced
        return referenced | self.unreferenced_q(referencing_rows)

    def unreferenced_q(self, referencing_rows: QuerySet[Any, Any]) -> Q:
        """Targets that nothing refers to: what a join's NULLs match too."""
        field = self.field
        every_reference = referencing_rows.filter(**{f"{field.attname}__isnull": False})
        referenced_ids = self.referenced_id_set(every_reference)
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
        column = f"{self.prefix}{target_attname}"
        return Q((f"{column}__in", unreferenced)) | Q((f"{column}__isnull", True))

    def referenced_id_set(self, referencing_rows: QuerySet[Any, Any]) -> IdSet:
        """The targets' ids that the rows of ``referencing_rows`` hold."""
        field = self.field
        ids = referencing_rows.values_list(field.attname, flat=True)
        source: Iterable[Any]
        if field.target_is_local:  # Beside each target, in its database.
            source = BesideTheQuery(ids.using)
        elif len(field.referencing_aliases) == 1:
            source = ids
        else:  # A model in several databases: the partition's, else all.
            source = WhereItLives(ids)
        return IdSet(source, field.target_field)


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


def holds_only_for_null(opts: Options[Any], lookup: str, value: object) -> bool:
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
    return single_column and field.concrete and not getattr(field, "null", True)


def selected_target_name(field: CrossDBForeignKey, query: object) -> str:
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


# Django 6.1 reads a negated ``__in`` whose list holds None as "IN (the
# others) OR IS NULL" over the join (#20024); Django 5.2 and 6.0 drop the None.
NEGATED_IN_MATCHES_NULL = django.VERSION >= (6, 1)


def null_as_isnull(lookup: str, value: object) -> Q | None:
    """``lookup__in=[..., None]`` as Django 6.1 reads it under a negation."""
    if not (NEGATED_IN_MATCHES_NULL and lookup.endswith(f"{LOOKUP_SEP}in")):
        return None
    if not isinstance(value, (list, tuple, set, frozenset)) or None not in value:
        return None
    path = lookup.removesuffix(f"{LOOKUP_SEP}in")
    others = [item for item in value if item is not None]
    return Q((lookup, others)) | Q((f"{path}{LOOKUP_SEP}isnull", True))


def split_cross_lookups(
    model: type[models.Model],
    q: Q,
    branch_negated: bool = False,
    current_negated: bool = False,
) -> Q:
    """Rewrite every lookup in ``q`` that crosses databases into one on this
    database's own columns.

    Lookups on the same relation inside one AND node become a single query
    on the other side, so ``filter(links__url=..., links__title=...)`` keeps
    Django's meaning: one link matching both. Under a negation Django asks
    a subquery per lookup of a multi-valued relation (``exclude(links__url=
    ..., links__title=...)`` excludes posts with such a link and such a
    link), so those are not grouped there.
    """
    branch_negated = branch_negated or q.negated
    current_negated = current_negated != q.negated
    # Under a negation Django adds its NULL handling to the lookup it builds
    # from a path; elsewhere a column of the own table can be given resolved.
    own_table = None if branch_negated else model._meta.concrete_model
    children: list[Any] = []
    groups: dict[tuple[Any, ...], tuple[CrossLookup, list[Any]]] = {}
    child: Any
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
                (cross.lookup_across, child[1])
            )
        else:
            children.append(cross.as_q([(cross.lookup_across, child[1])], own_table))
    for cross, conditions in groups.values():
        children.append(cross.as_q(conditions, own_table))
    return SplitQ(*children, _connector=q.connector, _negated=q.negated)


class SplitQ(Q):
    """A Q whose lookups across databases are split already: Query._add_q()
    meets the nested nodes again."""


class CrossQuery(Query):
    """A Query that splits cross-database lookups and refuses cross joins."""

    def _add_q(self, q_object: Q, *args: Any, **kwargs: Any) -> Any:
        # _add_q, not add_q: a Q inside an expression (an aggregate's filter,
        # When()) is resolved through it too.
        if not isinstance(q_object, SplitQ) and self.model is not None:
            q_object = split_cross_lookups(self.model, q_object)
        return super()._add_q(q_object, *args, **kwargs)  # type: ignore[misc]

    def names_to_path(
        self,
        names: list[str],
        opts: Any,
        allow_many: bool = True,
        fail_on_missing: bool = False,
    ) -> Any:
        path, final_field, targets, rest = super().names_to_path(
            names, opts, allow_many, fail_on_missing
        )
        for position, info in enumerate(path):
            cross_field = cross_field_of(info.join_field)
            if cross_field is None:
                continue
            # A forward step that ends on the target's id is answered by the
            # own column (Django trims the join); anything else would join.
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


def bare_select_related(model: Any, depth: int = 1) -> list[str]:
    """The paths a bare ``select_related()`` follows: every non-null forward
    relation, as Django does, a cross one included (and ended there)."""
    paths: list[str] = []
    for field in model._meta.fields:
        follows = (
            field.remote_field is not None
            and not field.null
            and not getattr(field.remote_field, "parent_link", False)
        )
        if not follows:
            continue
        nested: list[str] = []
        if depth < SELECT_RELATED_MAX_DEPTH and not isinstance(
            field, CrossDBForeignKey
        ):
            nested = bare_select_related(field.related_model, depth + 1)
        paths.extend(
            [f"{field.name}{LOOKUP_SEP}{path}" for path in nested] or [field.name]
        )
    return paths


def forward_descriptor(
    model: type[models.Model], lookup: object
) -> CrossDBForwardDescriptor | None:
    """The descriptor a prefetch ``lookup`` names, when it is just a forward
    cross relation of ``model`` (``"post"``, or ``select_related("post")``)."""
    if isinstance(lookup, CrossSelect) and lookup.queryset is None:
        lookup = lookup.prefetch_through
    if not isinstance(lookup, str) or LOOKUP_SEP in lookup:
        return None
    descriptor = getattr(model, lookup, None)
    return descriptor if isinstance(descriptor, CrossDBForwardDescriptor) else None


def prefetch_direct(
    model: type[models.Model], instances: list[Any], lookups: list[Any]
) -> list[Any]:
    """Answer the prefetch ``lookups`` that take a direct path on
    ``instances`` of ``model``; return the others, for Django's
    ``prefetch_related_objects()``.

    A lookup that only names a forward cross relation, or starts with a
    reverse one, takes a direct path for that relation; every other one,
    and a reverse relation given its own queryset or ``to_attr``, Django's
    machinery.
    """
    lookups = list(lookups)
    for lookup in list(lookups):
        descriptor = forward_descriptor(model, lookup)
        if descriptor is not None:
            descriptor.prefetch_into(instances)
            lookups.remove(lookup)
    for field, group in direct_reverse_groups(model, lookups):
        children = prefetch_reverse_into(instances, field)
        if children is None:
            continue  # Django's path, for the whole group.
        taken = {id(lookup) for lookup in group}
        lookups = [lookup for lookup in lookups if id(lookup) not in taken]
        nested = [below for lookup in group if (below := one_level_down(lookup))]
        prefetch_related_objects(children, *nested)
    return lookups


def direct_reverse_groups(
    model: type[models.Model], lookups: list[Any]
) -> list[tuple[CrossDBForeignKey, list[Any]]]:
    """The prefetch lookups that start with a reverse cross relation of
    ``model`` (``"links"``, ``"links__tags"``), by relation, where that
    relation's own level is plain: a ``Prefetch`` of the relation itself
    (a queryset, ``to_attr``) leaves its whole group to Django."""
    groups: dict[str, tuple[CrossDBForeignKey, list[Any]]] = {}
    djangos = set()
    for lookup in lookups:
        is_name = isinstance(lookup, str)
        through = lookup if is_name else lookup.prefetch_through
        name, _, below = through.partition(LOOKUP_SEP)
        field = reverse_cross_field(model, name)
        if field is None:
            continue
        if not is_name and (type(lookup) is not Prefetch or not below):
            djangos.add(name)
        groups.setdefault(name, (field, []))[1].append(lookup)
    return [group for name, group in groups.items() if name not in djangos]


def one_level_down(lookup: str | Prefetch[Any, Any, Any]) -> Any:
    """``lookup`` from the related rows (``links__tags`` -> ``tags``), with
    its queryset and ``to_attr``; None for the relation alone."""
    if isinstance(lookup, str):
        return lookup.partition(LOOKUP_SEP)[2] or None
    below = lookup.prefetch_through.partition(LOOKUP_SEP)[2]
    if not below:
        return None
    return Prefetch(below, queryset=lookup.queryset, to_attr=lookup.to_attr)


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
        queryset: QuerySet[Any, Any] | None = None
        if rests:
            target = step.field.remote_field.model
            queryset = CrossQuerySet(target).select_related(
                *(rest for rest in rests if rest is not None)
            )
        prefetch: CrossSelect[str, Any, None] = cls(step.head, queryset=queryset)  # type: ignore[assignment]
        prefetch.step, prefetch.rests = step, rests
        return prefetch


class CrossQuerySet(models.QuerySet[ModelT, RowT]):
    """The queryset of ``MultiDBManager``: cross lookups, prefetch, checks."""

    # What values() asks across databases, and the shape it asked for.
    _cross_values: CrossValues | None = None
    _cross_values_shape: type[BaseIterable[Any]] | None = None
    # Django's own, which django-stubs leave out.
    _prefetch_related_lookups: tuple[Any, ...]
    _iterable_class: type[BaseIterable[Any]]
    _prefetch_done: bool

    def __init__(
        self,
        model: type[ModelT] | None = None,
        query: Query | None = None,
        using: str | None = None,
        hints: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, query or CrossQuery(model), using, hints)

    def _clone(self) -> CrossQuerySet[ModelT, RowT]:
        clone: CrossQuerySet[ModelT, RowT] = super()._clone()  # type: ignore[misc]
        clone._cross_values = self._cross_values
        clone._cross_values_shape = self._cross_values_shape
        return clone

    def _values(self, *fields: Any, **expressions: Any) -> CrossQuerySet[ModelT, Any]:
        own: list[Any] = []
        across: dict[str, Across] = {}
        for name in fields:
            step = cross_step(self.model, name) if isinstance(name, str) else None
            if step is None or reads_own_column(step):
                own.append(name)
                continue
            if step.head not in across:
                across[step.head] = Across(step, key_name(step), CrossQuerySet)
            across[step.head].names[name] = name_across(step)
        for relation in across.values():
            relation.check_names()
        keys = [a.key for a in across.values() if a.key not in own]
        clone: CrossQuerySet[ModelT, Any] = super()._values(  # type: ignore[misc]
            *own, *keys, **expressions
        )
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

    def values(self, *fields: Any, **expressions: Any) -> CrossQuerySet[ModelT, Any]:
        return self.merge_across(super().values(*fields, **expressions))

    def values_list(
        self, *fields: Any, flat: bool = False, named: bool = False
    ) -> CrossQuerySet[ModelT, Any]:
        return self.merge_across(super().values_list(*fields, flat=flat, named=named))

    @staticmethod
    def merge_across(clone: QuerySet[Any, Any]) -> CrossQuerySet[Any, Any]:
        """Read the names across databases in a second query per chunk."""
        assert isinstance(clone, CrossQuerySet)
        if clone._cross_values is not None:
            clone._cross_values_shape = clone._iterable_class
            clone._iterable_class = CrossValuesIterable
        return clone

    def select_related(self, *fields: str | None) -> CrossQuerySet[ModelT, RowT]:
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
        own: list[str] = []
        across: dict[str, tuple[CrossStep, list[str | None]]] = {}
        paths = [path for path in fields if path is not None]
        for path in paths or bare_select_related(self.model):
            step = cross_step(self.model, path) if path is not None else None
            if path is None or step is None or step.is_reverse:
                own.append(path)  # Django answers, or reports the error.
                continue
            if step.prefix:
                own.append(step.prefix)
            # A bare select_related() goes on with a bare one over there.
            rest = None if bare else step.rest
            across.setdefault(step.head, (step, []))[1].append(rest)
        clone = super().select_related(*own) if own else self._chain()  # type: ignore[attr-defined]
        assert isinstance(clone, CrossQuerySet)
        return clone.cross_select(across.values())

    def cross_select(
        self, steps: Iterable[tuple[CrossStep, list[str | None]]]
    ) -> CrossQuerySet[ModelT, RowT]:
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
        clone: CrossQuerySet[ModelT, RowT] = self._chain()  # type: ignore[attr-defined]
        clone._prefetch_related_lookups = tuple(lookups)
        return clone

    def _prefetch_related_objects(self) -> None:
        lookups = list(self._prefetch_related_lookups)
        if issubclass(self._iterable_class, ModelIterable) and self._result_cache:
            lookups = prefetch_direct(self.model, self._result_cache, lookups)
        prefetch_related_objects(self._result_cache or [], *lookups)  # type: ignore[type-var]
        self._prefetch_done = True

    def prefetch_cross(
        self, *lookups: str | Prefetch[Any, Any, Any]
    ) -> CrossQuerySet[ModelT, RowT]:
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

    def bulk_create(
        self, objs: Iterable[ModelT], *args: Any, **kwargs: Any
    ) -> list[ModelT]:
        """Django's ``bulk_create()``, after at most one query per enforced cross
        relation that checks every target of the batch exists."""
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

    def update(self, **kwargs: Any) -> int:
        """Django's ``update()``, after one query per enforced cross relation
        set to a value (not an expression) that checks its target exists."""
        for field in self.enforced_fields():
            for name in (field.name, field.attname):
                value = kwargs.get(name)
                if isinstance(value, models.Model):
                    value = getattr(value, field.target_field.attname)
                if value is not None and not hasattr(value, "resolve_expression"):
                    field.check_targets_exist([value], self.db)
        return super().update(**kwargs)
