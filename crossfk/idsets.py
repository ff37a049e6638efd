"""Id sets that reach SQL as a single parameter, whatever their size.

Cross-database work moves lists of ids from one server to another. Spelled as
``IN (%s, %s, ...)`` a list of 100,000 ids hits "too many SQL variables" on
SQLite and bloats every statement elsewhere, so the ids travel as one array
(PostgreSQL) or one JSON document (SQLite, MySQL, MariaDB) that the
database unpacks. A MySQL or MariaDB statement is bounded by the server's
``max_allowed_packet``: a set past it raises ``IdSetTooLarge`` unsent.
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
from weakref import WeakKeyDictionary

from django.core.exceptions import EmptyResultSet
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Expression, Field, IntegerField, QuerySet
from django.db.models.fields.related_lookups import RelatedIn
from django.db.models.sql import Query
from django.db.models.sql.compiler import SQLCompiler
from django.utils.datastructures import OrderedSet

from crossfk.exceptions import IdSetTooLarge
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

    def as_mysql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> SQL:
        values = self.db_values(connection)
        if not has_json_table(connection):
            # Each id a literal and ", " between them.
            size = len(json_document(values).encode()) - 2 + len(values) - 1
            self.ensure_fits(connection, len(values), size)
            return ", ".join(["%s"] * len(values)), values
        document = json_document(values)
        self.ensure_fits(connection, len(values), quoted_size(document))
        if isinstance(self.column_field, IntegerField):
            db_type = self.element_db_type(connection)
            columns = f"COLUMNS (v {db_type} PATH '$')"
            return f"SELECT j.v FROM JSON_TABLE(%s, '$[*]' {columns}) AS j", [document]
        # A JSON_TABLE column of a string type takes the database's default
        # collation and compares with it: in a utf8mb4_unicode_ci column of a
        # utf8mb4_bin database, "abc" would miss "ABC". JSON_UNQUOTE()'s
        # result yields to the column's collation, as a literal of the plain
        # list does (coercibility 4).
        columns = "COLUMNS (v JSON PATH '$')"
        return (
            f"SELECT JSON_UNQUOTE(j.v) FROM JSON_TABLE(%s, '$[*]' {columns}) AS j",
            [document],
        )

    def ensure_fits(
        self, connection: BaseDatabaseWrapper, count: int, size: int
    ) -> None:
        """Raise ``IdSetTooLarge`` where ``size`` bytes of ids would not fit
        in one statement on the server.

        Sent, such a statement makes the server drop the connection. Nor can
        the set be split into several queries: it sits inside one statement,
        a filter, an exclude, a subquery or a delete, whose meaning would
        change. So it fails here, before anything is sent.
        """
        if size <= EVERY_SERVER_TAKES:
            return
        limit = max_allowed_packet(connection)
        if size > limit - STATEMENT_ALLOWANCE:
            raise IdSetTooLarge(
                f"The set of {count:,} ids for {self.output_field} takes "
                f"{size:,} bytes, too many for one statement on database "
                f"{connection.alias!r}, whose max_allowed_packet is {limit:,} "
                f"bytes. Filter by fewer ids, or raise the server's "
                f"max_allowed_packet."
            )


# A set this small (about 100,000 ids) fits in a statement on any server at
# MySQL's smallest default max_allowed_packet (1 MiB, until 5.5), with room for
# the rest of it: no query is spent reading the server's own limit.
EVERY_SERVER_TAKES = 512 * 1024
# Room for the rest of the statement, which an id set does not see from where
# it is compiled; a statement larger than that still fails at the server.
STATEMENT_ALLOWANCE = 64 * 1024

_max_allowed_packets: WeakKeyDictionary[Any, int] = WeakKeyDictionary()


def has_json_table(connection: BaseDatabaseWrapper) -> bool:
    """Whether the server unpacks a JSON document into rows: MariaDB 10.6,
    MySQL 8.0.4."""
    if connection.mysql_is_mariadb:  # type: ignore[attr-defined]
        return connection.mysql_version >= (10, 6)  # type: ignore[attr-defined,no-any-return]
    return connection.mysql_version >= (8, 0, 4)  # type: ignore[attr-defined,no-any-return]


def max_allowed_packet(connection: BaseDatabaseWrapper) -> int:
    """The largest statement the server takes, read once per connection to it.

    A session's value is the server's global one when it connected, and
    fixed for the session: a new connection reads it again.
    """
    connection.ensure_connection()
    raw_connection = connection.connection
    if raw_connection not in _max_allowed_packets:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@max_allowed_packet")
            (_max_allowed_packets[raw_connection],) = cursor.fetchone()
    return _max_allowed_packets[raw_connection]


def json_document(values: list[Any]) -> str:
    # A value JSON has no type for (a UUID of MariaDB's own uuid column), as
    # the string the column reads it from.
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False, default=str)


def quoted_size(document: str) -> int:
    """The bytes a JSON document takes as a string literal of a statement:
    quoted, its quotes and backslashes escaped."""
    return len(document.encode()) + document.count('"') + document.count("\\") + 2


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
