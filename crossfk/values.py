"""``values()`` and ``values_list()`` across databases.

No join reaches the other database, so a name such as ``"post__title"`` is
answered in two steps per chunk of rows: the local query selects the id
column the relation stores (``post_id``) beside the local names, then one
query per relation reads the other side's values for the chunk's ids, and
the rows are merged in Python, in the local query's order and in the shape
``values()``/``values_list()`` asked for. A reverse relation repeats the row
for each related row, as a join does; a row with no related row gets
``None``s, as a LEFT OUTER JOIN gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice, product
from operator import itemgetter

from django.db.models.constants import LOOKUP_SEP
from django.db.models.query import (
    BaseIterable,
    FlatValuesListIterable,
    NamedValuesListIterable,
    ValuesIterable,
    ValuesListIterable,
)
from django.db.models.utils import create_namedtuple_class


@dataclass
class Across:
    """The names of one ``values()`` call that read one cross relation."""

    step: object  # crossfk.query.CrossStep
    key: str  # the local name holding the id the relation compares
    queryset_class: type  # CrossQuerySet: the other side may cross again
    names: dict[str, str] = field(default_factory=dict)  # output -> remote name

    def other_side(self) -> tuple:
        """The model, alias and compared column of the relation's other end."""
        related = self.step.field
        if self.step.is_reverse:
            return related.model, related.referencing_alias, related.attname
        target = related.remote_field.model
        return target, related.target_alias, related.target_field.attname

    def check_names(self) -> None:
        """Raise Django's FieldError now for a name the other side lacks, as
        ``values()`` does, rather than when the rows are read."""
        model, alias, _ = self.other_side()
        self.queryset_class(model, using=alias).values(*self.names.values())

    def values_by_key(self, keys: set) -> dict:
        """{key: [the related row's values, in the order of ``names``]},
        one query for ``keys``."""
        keys = keys - {None}
        if not keys:
            return {}
        model, alias, compared = self.other_side()
        remote = list(dict.fromkeys(self.names.values()))
        rows = (
            self.queryset_class(model, using=alias)
            .filter(**{f"{compared}__in": list(keys)})
            .order_by("pk")
            .values_list(compared, *remote)
        )
        positions = [remote.index(name) + 1 for name in self.names.values()]
        found = {}
        for row in rows:
            found.setdefault(row[0], []).append(tuple(row[p] for p in positions))
        return found


@dataclass
class CrossValues:
    """What a ``values()`` call across databases asks for."""

    names: list[str]  # the output, in order
    across: list[Across]

    def sources(self) -> list[tuple[int | None, str]]:
        """Where each output name is read: (None, name) from the local row,
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


class CrossValuesIterable(BaseIterable):
    """Yield the rows of ``values()`` across databases.

    ``iterator()`` reads and merges a chunk of rows at a time; evaluating
    the queryset reads every local row, then each relation once. A merged
    row is the local row followed by each relation's values, from which
    ``itemgetter()`` picks the output in order.
    """

    def __iter__(self):
        queryset = self.queryset
        spec, shape = queryset._cross_values, queryset._cross_values_shape
        local = queryset._chain()
        query = local.query
        # The local row's columns, named as ValuesIterable names them.
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
        pick = itemgetter(*picked)
        if len(picked) == 1:
            pick = lambda merged, pick=pick: (pick(merged),)  # noqa: E731
        make = row_maker(shape, spec.names)
        # DISTINCT ran over the local names and ids: the merged rows may
        # repeat, which a DISTINCT over the output would not.
        seen = set() if query.distinct else None
        expands = any(relation.step.is_reverse for relation in spec.across)
        rows = iter(ValuesListIterable(local, self.chunked_fetch, self.chunk_size))
        size = self.chunk_size if self.chunked_fetch else None
        while chunk := list(islice(rows, size)):
            # Per relation: the key's column, {key: [related values]}, and
            # the one row of NULLs a LEFT JOIN gives a row with none.
            relations = [
                (
                    key,
                    relation.values_by_key({row[key] for row in chunk}),
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


def row_maker(shape, names: list[str]):
    """How a row's values become what ``values()``/``values_list()`` yields."""
    if shape is ValuesIterable:
        return lambda values: dict(zip(names, values, strict=True))
    if shape is FlatValuesListIterable:
        return lambda values: values[0]
    if shape is NamedValuesListIterable:
        tuple_class = create_namedtuple_class(*names)
        return lambda values: tuple.__new__(tuple_class, values)
    return lambda values: values


def remote_name(step) -> str:
    """The other side's name for what a path asks after the cross step."""
    return step.rest or "pk"


def key_name(step) -> str:
    """The local name holding the value a cross step compares."""
    related = step.field
    local = related.target_field.attname if step.is_reverse else related.attname
    return LOOKUP_SEP.join(filter(None, [step.prefix, local]))
