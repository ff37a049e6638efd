"""Id sets that reach SQL as a single parameter, whatever their size.

Cross-database work moves lists of ids from one server to another. Spelled as
``IN (%s, %s, ...)`` a list of 100,000 ids hits "too many SQL variables" on
SQLite and bloats every statement elsewhere, so the ids travel as one array
(PostgreSQL) or one JSON document (SQLite) that the database unpacks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from operator import itemgetter
from threading import Lock
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Expression, Field, IntegerField, QuerySet
from django.db.models.fields.related_lookups import RelatedIn
from django.db.models.sql import Query
from django.db.models.sql.compiler import SQLCompiler
from django.utils.datastructures import OrderedSet

from crossfk.parallel import meanwhile

# What as_sql() returns: the SQL, and its parameters.
SQL = tuple[str, Any]


class ColumnValues:
    """The one column a query selects, read in one database each time it is
    iterated: a lazy source for an ``IdSet`` without a QuerySet around it,
    so neither building nor reading it clones a query."""

    def __init__(self, query: Query, using: str) -> None:
        self.query = query
        self.using = using

    def __iter__(self) -> Iterator[Any]:
        compiler = self.query.get_compiler(self.using)
        return map(itemgetter(0), compiler.results_iter())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.using}: {self.query}>"


class BesideTheQuery:
    """Values read in the database of the query that holds them, each time
    it is compiled: the other end of a relation whose rows sit beside the
    rows they relate to (``SameAsSource``), ids repeating from one database
    to the next."""

    def __init__(self, read: Callable[[str], Iterable[Any]]) -> None:
        self.read = read

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(f"{self!r} is read in a database: through an IdSet.")


@dataclass
class ReadOnce:
    """What the id sets of one fan-out have read, shared by its workers."""

    values: dict[int, list[Any]] = field(default_factory=dict)
    lock: Lock = field(default_factory=Lock)


_read_once: ContextVar[ReadOnce | None] = ContextVar("crossfk_read_once", default=None)


def read_once(source: object, read: Callable[[], list[Any]]) -> list[Any]:
    """``read()``; inside ``ids_read_once()``, once for all its databases.

    A fan-out compiles the same query once per database: a filter across a
    relation (``fan_out(Order.objects.filter(customer__name=...))``) would
    otherwise ask the target's database once per database fanned out to.
    """
    shared = _read_once.get()
    if shared is None:
        return read()
    with shared.lock:
        if id(source) not in shared.values:
            shared.values[id(source)] = read()
        return shared.values[id(source)]


@contextmanager
def ids_read_once() -> Iterator[None]:
    """Within the block (a fan-out), each id set reads its values once."""
    token = _read_once.set(ReadOnce())
    try:
        yield
    finally:
        _read_once.reset(token)


class IdSet(Expression):
    """A set of values for ``field__in=IdSet(values, field)``.

    ``values`` may be a lazy iterable such as another database's
    ``values_list(..., flat=True)``: it is read when the outer query is
    compiled, so building a queryset stays free of queries.
    """

    def __init__(self, values: Iterable[Any], output_field: Field[Any, Any]) -> None:
        super().__init__(output_field=output_field)
        self.values = values

    # Equality by identity: the default compares constructor arguments, which
    # would evaluate a lazy queryset of ids against another database.
    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    def resolve_expression(self, *args: Any, **kwargs: Any) -> IdSet:
        # Nothing to resolve, and never changed once made: no copy.
        return self

    def db_values(self, connection: BaseDatabaseWrapper) -> list[Any]:
        """The values as the database stores them; an empty set matches nothing."""
        field = self.output_field
        source = self.values
        if isinstance(source, QuerySet):
            source = source.all()  # A fresh read at each compile: no stale ids.
        # The values are Python values already: read from a database, taken
        # from instances, or prepared by the lookup. Preparing them again
        # would cost more than the query at a few hundred ids.
        low, high = self.column_range(connection)
        if isinstance(source, BesideTheQuery):
            # Each database its own values, even inside a fan-out.
            read = list(OrderedSet(source.read(connection.alias)))
        else:
            # A source read in other databases at once: the query's own
            # connection opens meanwhile.
            with meanwhile(connection.ensure_connection):
                read = read_once(self, lambda: list(OrderedSet(source)))
        values = [
            field.get_db_prep_value(value, connection, prepared=True)
            for value in read
            if value is not None
            # As Django's integer lookups: a value the column cannot hold
            # matches nothing, rather than failing the cast.
            and not (isinstance(value, int) and not low <= value <= high)
        ]
        if not values:
            raise EmptyResultSet
        return values

    @property
    def column_field(self) -> Field[Any, Any]:
        """The field whose column type the values take."""
        field = self.output_field
        if field.is_relation:
            return getattr(field, "target_field", field)
        return field

    def column_range(self, connection: BaseDatabaseWrapper) -> tuple[float, float]:
        """The values an integer column holds; unbounded for other columns."""
        column_field = self.column_field
        if not isinstance(column_field, IntegerField):
            return -math.inf, math.inf
        low, high = connection.ops.integer_field_range(column_field.get_internal_type())
        return (
            -math.inf if low is None else low,
            math.inf if high is None else high,
        )

    def element_db_type(self, connection: BaseDatabaseWrapper) -> str:
        db_type: str = self.column_field.rel_db_type(connection)  # type: ignore[attr-defined]
        return db_type

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQL:
        # Other backends get a plain parameter list, bounded by their limits.
        values = self.db_values(connection)
        return ", ".join(["%s"] * len(values)), values

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQL:
        return "SELECT value FROM json_each(%s)", [
            json.dumps(self.db_values(connection))
        ]

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> SQL:
        db_type = self.element_db_type(connection)
        return f"SELECT unnest(%s::{db_type}[])", [self.db_values(connection)]


class IdSetIn(RelatedIn):
    """``relation__in=[...]`` on a CrossDBForeignKey, sent as one ``IdSet``."""

    def id_set(self) -> IdSet:
        if isinstance(self.rhs, IdSet):
            return self.rhs
        return IdSet(self.rhs, self.lhs.output_field)

    def process_rhs(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> SQL:
        if not self.rhs_is_direct_value():
            return super().process_rhs(compiler, connection)
        sql, params = compiler.compile(self.id_set())
        return f"({sql})", params

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> SQL:
        if not (self.rhs_is_direct_value() or isinstance(self.rhs, IdSet)):
            return self.as_sql(compiler, connection)
        # "= ANY(array)": PostgreSQL plans it as a list of values, a little
        # faster than IN over the unnested array.
        ids = self.id_set()
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        db_type = ids.element_db_type(connection)
        sql = f"{lhs_sql} = ANY(%s::{db_type}[])"
        return sql, (*lhs_params, ids.db_values(connection))


class OwnColumnIn(Expression):
    """``relation__in=IdSet(...)`` on the queryset's own table, given as the
    lookup Django's ``build_filter()`` makes of it (the relation's column,
    compared as the relation), without walking the path to it again."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, field: Field[Any, Any], ids: IdSet) -> None:
        super().__init__()
        self.relation, self.ids = field, ids

    # Resolves to another expression, as F() does; django-stubs say Self.
    def resolve_expression(  # type: ignore[override]
        self, query: Any = None, *args: Any, **kwargs: Any
    ) -> IdSetIn:
        relation = self.relation
        column = relation.get_col(query.get_initial_alias(), relation)
        return IdSetIn(column, self.ids)
