"""``values()`` and ``values_list()`` across databases.

No join reaches the other database, so a name such as ``"post__title"`` is
answered in two steps per chunk of rows: the queryset's own query selects the id
column the relation stores (``post_id``) beside its own names, then one
query per relation reads the other side's values for the chunk's ids, and
the rows are merged in Python, in that query's order and in the shape
``values()``/``values_list()`` asked for. A reverse relation repeats the row
for each related row, as a join does; a row with no related row gets
``None``s, as a LEFT OUTER JOIN gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice, product
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from django.db.models.constants import LOOKUP_SEP
from django.db.models.query import (
    BaseIterable,
    FlatValuesListIterable,
    NamedValuesListIterable,
    ValuesIterable,
    ValuesListIterable,
)
from django.db.models.utils import create_namedtuple_class

from crossfk.fanout import fan_out, fans_out
from crossfk.paths import CrossStep
from crossfk.placement import sole_alias


@dataclass
class Across:
    """The names of one ``values()`` call that read one cross relation."""

    step: CrossStep
    key: str  # the own name holding the id the relation compares
    queryset_class: Any  # CrossQuerySet: the other side may cross again
    names: dict[str, str] = field(default_factory=dict)  # output -> name across

    def other_side(self, own_alias: str | None = None) -> tuple[Any, str | None, str]:
        """The model, alias and compared column of the relation's other end:
        ``own_alias``, that of the rows read, when the target sits beside
        each row that refers to it (``SameAsSource``); else no alias for a
        model in several databases (a tenant's, or one a resolver places by
        id), read where the partition in effect says, else in all of them."""
        related = self.step.field
        beside = own_alias if related.target_is_local else None
        if self.step.is_reverse:
            alias = beside or sole_alias(related.referencing_aliases)
            return related.model, alias, related.attname
        alias = beside or sole_alias(related.target_aliases)
        return related.remote_field.model, alias, related.target_field.attname

    def check_names(self) -> None:
        """Raise Django's FieldError now for a name the other side lacks, as
        ``values()`` does, rather than when the rows are read."""
        model, alias, _ = self.other_side()
        self.queryset_class(model, using=alias).values(*self.names.values())

    def values_by_key(
        self, keys: set[Any], own_alias: str | None
    ) -> dict[Any, list[tuple[Any, ...]]]:
        """{key: [the related row's values, in the order of ``names``]},
        one query for ``keys`` of rows read in ``own_alias``."""
        keys = keys - {None}
        if not keys:
            return {}
        model, alias, compared = self.other_side(own_alias)
        names_across = list(dict.fromkeys(self.names.values()))
        rows = (
            self.queryset_class(model, using=alias)
            .filter(**{f"{compared}__in": list(keys)})
            .order_by("pk")
            .values_list(compared, *names_across)
        )
        positions = [names_across.index(name) + 1 for name in self.names.values()]
        found: dict[Any, list[tuple[Any, ...]]] = {}
        for row in fan_out(rows) if fans_out(rows) else rows:
            found.setdefault(row[0], []).append(tuple(row[p] for p in positions))
        return found


@dataclass
class CrossValues:
    """What a ``values()`` call across databases asks for."""

    names: list[str]  # the output, in order
    across: list[Across]

    def sources(self) -> list[tuple[int | None, str]]:
        """Where each output name is read: (None, name) from the own row,
        or (position of its relation, name)."""
        return [
            next(
                (
                    (position, name)
                    for position, relation in enumerate(self.across)
                    if name in relation.names
                ),
                (None, name),
            )
            for name in self.names
        ]


# django-stubs make BaseIterable generic; Django's cannot be subscripted.
if TYPE_CHECKING:
    Iterable = BaseIterable[Any]
else:
    Iterable = BaseIterable


class CrossValuesIterable(Iterable):
    """Yield the rows of ``values()`` across databases.

    ``iterator()`` reads and merges a chunk of rows at a time; evaluating
    the queryset reads every own row, then each relation once. A merged
    row is the own row followed by each relation's values, from which
    ``itemgetter()`` picks the output in order.
    """

    def __iter__(self) -> Iterator[Any]:
        queryset: Any = self.queryset  # A CrossQuerySet
        spec, shape = queryset._cross_values, queryset._cross_values_shape
        own = queryset._chain()
        query = own.query
        # The own row's columns, named as ValuesIterable names them.
        columns = list(getattr(query, "selected", None) or ()) or [
            *query.extra_select,
            *query.values_select,
            *query.annotation_select,
        ]
        column = {name: position for position, name in enumerate(columns)}
        keys = [column[relation.key] for relation in spec.across]
        start, starts = len(columns), []
        for relation in spec.across:
            starts.append(start)
            start += len(relation.names)
        picked = [
            column[name]
            if position is None
            else starts[position] + list(spec.across[position].names).index(name)
            for position, name in spec.sources()
        ]
        pick = tuple_getter(picked)
        make = row_maker(shape, spec.names)
        # DISTINCT ran over the own names and ids: the merged rows may
        # repeat, which a DISTINCT over the output would not.
        seen: set[tuple[Any, ...]] | None = set() if query.distinct else None
        expands = any(relation.step.is_reverse for relation in spec.across)
        rows: Iterator[tuple[Any, ...]] = iter(
            ValuesListIterable(own, self.chunked_fetch, self.chunk_size)
        )
        size = self.chunk_size if self.chunked_fetch else None
        while chunk := list(islice(rows, size)):
            # Per relation: the key's column, {key: [related values]}, and
            # the one row of NULLs a LEFT JOIN gives a row with none.
            relations = [
                (
                    key,
                    relation.values_by_key({row[key] for row in chunk}, own.db),
                    [(None,) * len(relation.names)],
                )
                for relation, key in zip(spec.across, keys, strict=True)
            ]
            for row in chunk:
                related = [table.get(row[key], none) for key, table, none in relations]
                # A forward relation gives a row one related row at most.
                combinations = (
                    product(*related) if expands else [[rows[0] for rows in related]]
                )
                for combination in combinations:
                    values = pick(sum(combination, row))
                    if seen is not None:
                        if values in seen:
                            continue
                        seen.add(values)
                    yield make(values)


def tuple_getter(positions: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Pick ``positions`` from a row, as a tuple even for one position."""
    if len(positions) == 1:
        (position,) = positions
        return lambda row: (row[position],)
    return itemgetter(*positions)


def row_maker(
    shape: type[BaseIterable[Any]], names: list[str]
) -> Callable[[tuple[Any, ...]], Any]:
    """How a row's values become what ``values()``/``values_list()`` yields."""
    if shape is ValuesIterable:
        return lambda values: dict(zip(names, values, strict=True))
    if shape is FlatValuesListIterable:
        return lambda values: values[0]
    if shape is NamedValuesListIterable:
        tuple_class = create_namedtuple_class(*names)
        return lambda values: tuple.__new__(tuple_class, values)
    return lambda values: values


def name_across(step: CrossStep) -> str:
    """The other side's name for what a path asks after the cross step."""
    return step.rest or "pk"


def key_name(step: CrossStep) -> str:
    """The own name holding the value a cross step compares."""
    related = step.field
    own = related.target_field.attname if step.is_reverse else related.attname
    return LOOKUP_SEP.join(filter(None, [step.prefix, own]))
