"""``fan_out(queryset)``: one queryset over every database of its model.

A model placed in several aliases (a database per tenant, shards) answers a
query in one of them at a time. ``fan_out()`` runs the query on each, at the
same time (``crossfk.parallel``), and combines what comes back: the rows of
all of them, the sum of their counts, whether any has a row. The reverse
accessor of a relation to such a model (``customer.orders``) is fanned out
when no ``partition()`` says which database to read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from heapq import merge
from itertools import chain
from typing import Any, TypeVar

from django.db import NotSupportedError, connections
from django.db.models import (
    Count,
    Max,
    Min,
    Model,
    QuerySet,
    Sum,
    prefetch_related_objects,
)
from django.db.models.constants import LOOKUP_SEP

from crossfk.idsets import ids_read_once
from crossfk.parallel import run_per_alias
from crossfk.placement import active_partition, model_aliases
from crossfk.relations import cross_foreign_keys
from crossfk.transaction import atomic

T = TypeVar("T")

# How each database's result of an aggregate combines into the whole's.
COMBINE: dict[type[Any], Callable[[list[Any]], Any]] = {
    Count: sum,
    Sum: lambda values: (
        sum(v for v in values if v is not None)
        if any(v is not None for v in values)
        else None
    ),
    Min: lambda values: min((v for v in values if v is not None), default=None),
    Max: lambda values: max((v for v in values if v is not None), default=None),
}


def fan_out(queryset: QuerySet[Any, Any]) -> FanOut:
    """``queryset`` on every alias of its model, evaluated concurrently."""
    return FanOut(queryset)


def reads_every_alias(model: type[Model]) -> bool:
    """Whether ``model`` lives in several databases and no ``partition()``
    in effect names one of them."""
    aliases = model_aliases(model)
    return len(aliases) > 1 and active_partition() not in aliases


class WhereItLives:
    """A queryset's values for an ``IdSet``, read, each time they are
    iterated, where its model lives: its alias, the partition in effect,
    else every database of a model placed in several."""

    def __init__(self, queryset: QuerySet[Any, Any]) -> None:
        self.queryset = queryset

    def __iter__(self) -> Iterator[Any]:
        queryset = self.queryset.all()  # A fresh read each time: no stale ids.
        return iter(fan_out(queryset) if fans_out(queryset) else queryset)


def referencing_aliases(model: type[Model]) -> list[str]:
    """The databases of the rows that refer to ``model`` across databases."""
    return [
        alias
        for field in cross_foreign_keys()
        if issubclass(model, field.remote_field.model)
        for alias in field.referencing_aliases
    ]


def fans_out(queryset: QuerySet[Any, Any]) -> bool:
    """Whether ``queryset`` reads every database of its model: it names none
    with ``using()``, nor does a ``partition()``."""
    return queryset._db is None and reads_every_alias(queryset.model)  # type: ignore[attr-defined]


class FanOut:
    """A queryset run on each alias of its model, its answers combined.

    Rows come database by database, in the order the model's aliases are
    placed, each instance with ``_state.db`` set; a queryset ordered by
    plain fields has them merged in that order. Chaining methods return a
    ``FanOut`` of the chained queryset.
    """

    def __init__(self, queryset: QuerySet[Any, Any]) -> None:
        self.queryset = queryset
        self.aliases = model_aliases(queryset.model)
        self._result_cache: list[Any] | None = None

    def __repr__(self) -> str:
        return f"<FanOut over {len(self.aliases)} databases: {self.queryset.query}>"

    def per_alias(self, function: Callable[[QuerySet[Any, Any]], T]) -> dict[str, T]:
        """``function(queryset.using(alias))`` for every alias, concurrently."""
        queryset = self.queryset
        with ids_read_once():
            return run_per_alias(
                lambda alias: function(queryset.using(alias)), self.aliases
            )

    # Rows ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows())

    def __len__(self) -> int:
        return len(self.rows())

    def __bool__(self) -> bool:
        return bool(self.rows())

    def rows(self) -> list[Any]:
        if self._result_cache is None:
            queryset = self.queryset
            # Each database's rows without prefetching: the prefetch then
            # runs once over all of them, one query per database it reads.
            lookups = queryset._prefetch_related_lookups  # type: ignore[attr-defined]
            bare = FanOut(queryset.prefetch_related(None))
            by_alias = bare.per_alias(list)
            rows = merged(queryset, list(by_alias.values()), self.aliases[0])
            if lookups and rows and isinstance(rows[0], Model):
                prefetch_related_objects(rows, *lookups)
            self._result_cache = rows
        return self._result_cache

    # Answers over every database --------------------------------------------

    def count(self) -> int:
        if self._result_cache is not None:
            return len(self._result_cache)
        return sum(self.per_alias(lambda queryset: queryset.count()).values())

    def exists(self) -> bool:
        if self._result_cache is not None:
            return bool(self._result_cache)
        return any(self.per_alias(lambda queryset: queryset.exists()).values())

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Counts, sums, minima and maxima over every database."""
        for arg in args:
            kwargs[arg.default_alias] = arg
        for name, aggregate in kwargs.items():
            combinable = type(aggregate) in COMBINE and not getattr(
                aggregate, "distinct", False
            )
            if not combinable:
                raise NotSupportedError(
                    f"fan_out(...).aggregate({name}={aggregate!r}): only Count, "
                    f"Sum, Min and Max combine over several databases (not "
                    f"distinct counts); aggregate Sum and Count for an average."
                )
        results = self.per_alias(lambda queryset: queryset.aggregate(**kwargs))
        return {
            name: COMBINE[type(aggregate)](
                [result[name] for result in results.values()]
            )
            for name, aggregate in kwargs.items()
        }

    def delete(self) -> tuple[int, dict[str, int]]:
        """Delete the rows in every database, in one ``crossfk.atomic`` over
        them and the databases their cross relations' cascades reach.

        One database after the other, on the caller's connections: the
        block commits them together.
        """
        total, counts = 0, Counter[str]()
        with atomic(*self.aliases, *referencing_aliases(self.queryset.model)):
            for alias in self.aliases:
                deleted, by_model = self.queryset.using(alias).delete()
                total += deleted
                counts.update(by_model)
        return total, dict(counts)

    # Chaining -------------------------------------------------------------------

    def chained(self, method: str, *args: Any, **kwargs: Any) -> FanOut:
        return FanOut(getattr(self.queryset, method)(*args, **kwargs))

    def all(self) -> FanOut:
        return self.chained("all")

    def filter(self, *args: Any, **kwargs: Any) -> FanOut:
        return self.chained("filter", *args, **kwargs)

    def exclude(self, *args: Any, **kwargs: Any) -> FanOut:
        return self.chained("exclude", *args, **kwargs)

    def order_by(self, *fields: Any) -> FanOut:
        return self.chained("order_by", *fields)

    def select_related(self, *fields: Any) -> FanOut:
        return self.chained("select_related", *fields)

    def prefetch_related(self, *lookups: Any) -> FanOut:
        return self.chained("prefetch_related", *lookups)

    def prefetch_cross(self, *lookups: Any) -> FanOut:
        return self.chained("prefetch_related", *lookups)

    def only(self, *fields: Any) -> FanOut:
        return self.chained("only", *fields)

    def defer(self, *fields: Any) -> FanOut:
        return self.chained("defer", *fields)

    def values(self, *fields: Any, **expressions: Any) -> FanOut:
        return self.chained("values", *fields, **expressions)

    def values_list(self, *fields: Any, **kwargs: Any) -> FanOut:
        return self.chained("values_list", *fields, **kwargs)

    def using(self, alias: str) -> QuerySet[Any, Any]:
        """The queryset on one of the databases: no longer fanned out."""
        return self.queryset.using(alias)


def merged(
    queryset: QuerySet[Any, Any], parts: list[list[Any]], alias: str
) -> list[Any]:
    """Each database's rows, merged by the queryset's ordering where it is
    plain fields of instances or ``values()`` dicts, in one direction; else
    one database's after the other's."""
    ordering = plain_ordering(queryset)
    first = next((part[0] for part in parts if part), None)
    if ordering is None or first is None or len(parts) < 2:
        return list(chain.from_iterable(parts))
    names, reverse = ordering
    read: Callable[[Any, str], Any]
    if isinstance(first, Model):
        opts = queryset.model._meta
        names = [
            opts.pk.attname if n == "pk" else opts.get_field(n).attname for n in names
        ]
        read = getattr
    elif isinstance(first, dict) and all(name in first for name in names):
        read = dict.__getitem__
    else:
        return list(chain.from_iterable(parts))
    # As the database orders NULL: first or last of an ascending order.
    null_rank = connections[alias].features.nulls_order_largest

    def key(row: Any) -> tuple[Any, ...]:
        values = (read(row, name) for name in names)
        return tuple(((v is None) == null_rank, v) for v in values)

    return list(merge(*parts, key=key, reverse=reverse))


def plain_ordering(queryset: QuerySet[Any, Any]) -> tuple[list[str], bool] | None:
    """The field names the queryset orders by, and whether descending; None
    unless they are plain names of its own model's fields, one direction."""
    query = queryset.query
    ordering = query.order_by or (
        query.default_ordering and queryset.model._meta.ordering
    )
    if not ordering:
        return None
    names = [name for name in ordering if isinstance(name, str)]
    if len(names) != len(ordering):
        return None  # Expressions: the database's to order.
    if any(LOOKUP_SEP in name or name == "?" for name in names):
        return None
    directions = {name.startswith("-") for name in names}
    if len(directions) != 1:
        return None
    return [name.lstrip("-") for name in names], directions.pop()
