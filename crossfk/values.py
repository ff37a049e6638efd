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

from django.db.models.constants import LOOKUP_SEP
from django.db.models.query import (
    BaseIterable,
    FlatValuesListIterable,
    NamedValuesListIterable,
    ValuesIterable,
)
from django.db.models.utils import create_namedtuple_class

# Rows merged per round trip when iterator() gives no chunk size.
CHUNK_SIZE = 2000


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
            return related.model, related.source_alias, related.attname
        target = related.remote_field.model
        return target, related.target_alias, related.target_field.attname

    def check_names(self) -> None:
        """Raise Django's FieldError now for a name the other side lacks, as
        ``values()`` does, rather than when the rows are read."""
        model, alias, _ = self.other_side()
        self.queryset_class(model, using=alias).values(*self.names.values())

    def fetch(self, rows: list[dict]) -> dict:
        """{key value: [remote value dicts]} for the keys of ``rows``."""
        keys = {row[self.key] for row in rows} - {None}
        if not keys:
            return {}
        model, alias, compared = self.other_side()
        remote = (
            self.queryset_class(model, using=alias)
            .filter(**{f"{compared}__in": list(keys)})
            .order_by("pk")
            .values(compared, *dict.fromkeys(self.names.values()))
        )
        found = {}
        for values in remote:
            found.setdefault(values[compared], []).append(values)
        return found


@dataclass
class CrossValues:
    """What a ``values()`` call across databases asks for."""

    names: list[str]  # the output, in order
    across: list[Across]

    @property
    def hidden_keys(self) -> list[str]:
        return [across.key for across in self.across]


class CrossValuesIterable(BaseIterable):
    """Yield the rows of ``values()`` across databases, a chunk at a time."""

    def __iter__(self):
        queryset = self.queryset
        spec, shape = queryset._cross_values, queryset._cross_values_shape
        local = queryset._chain()
        local._iterable_class = ValuesIterable
        rows = iter(ValuesIterable(local, self.chunked_fetch, self.chunk_size))
        size = self.chunk_size if self.chunked_fetch else CHUNK_SIZE
        make = row_maker(shape, spec.names)
        # DISTINCT ran over the local names and ids: the merged rows may
        # repeat, which a DISTINCT over the output would not.
        seen = set() if queryset.query.distinct else None
        while chunk := list(islice(rows, size)):
            found = [across.fetch(chunk) for across in spec.across]
            for row in chunk:
                for merged in merge(row, spec.across, found):
                    output = make(merged)
                    if seen is not None:
                        marker = tuple(merged[name] for name in spec.names)
                        if marker in seen:
                            continue
                        seen.add(marker)
                    yield output


def merge(row: dict, across: list[Across], found: list[dict]):
    """``row`` with each relation's values, once per combination of related
    rows (a join's rows); ``None``s where there is none."""
    choices = []
    for relation, rows_by_key in zip(across, found, strict=True):
        related = rows_by_key.get(row[relation.key]) or [None]
        choices.append([(relation, values) for values in related])
    for combination in product(*choices):
        merged = dict(row)
        for relation, values in combination:
            for name, remote in relation.names.items():
                merged[name] = None if values is None else values[remote]
        yield merged


def row_maker(shape, names: list[str]):
    """How a merged row becomes what ``values()``/``values_list()`` yields."""
    if shape is ValuesIterable:
        return lambda merged: {name: merged[name] for name in names}
    if shape is FlatValuesListIterable:
        [name] = names
        return lambda merged: merged[name]
    if shape is NamedValuesListIterable:
        tuple_class = create_namedtuple_class(*names)
        return lambda merged: tuple_class(*(merged[name] for name in names))
    return lambda merged: tuple(merged[name] for name in names)


def remote_name(step) -> str:
    """The other side's name for what a path asks after the cross step."""
    return step.rest or "pk"


def key_name(step) -> str:
    """The local name holding the value a cross step compares."""
    related = step.field
    local = related.target_field.attname if step.is_reverse else related.attname
    return LOOKUP_SEP.join(filter(None, [step.prefix, local]))
