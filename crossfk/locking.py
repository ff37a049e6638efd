"""Row locks that keep references and their targets consistent.

A write of references reads the targets in one database and writes in
another; a delete of targets reads the references in one database and
deletes in another. Run concurrently, each could miss what the other is
about to commit. Two lock styles, one on each side, make the later one see
the earlier:

- the references' writer locks the targets it found with a shared lock,
  until the transaction on the target's database ends
  (``found_and_locked``);
- the delete locks its targets FOR UPDATE (``lock_for_update``), which
  waits for those writers to commit, then reads the references again with
  a locking read (``latest_rows``).

By backend, the shared lock is PostgreSQL's FOR KEY SHARE, and InnoDB's
LOCK IN SHARE MODE on MariaDB and MySQL. SQLite takes no row lock: it
serializes the writers of each database. Other backends take none.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet

from crossfk.idsets import IdSet
from crossfk.transaction import declare

# The clause after a SELECT that keeps the rows it read from being deleted
# until its transaction ends, by Django's ``connection.vendor``. Django has
# no shared lock of its own.
SHARED_LOCKS = {
    # FOR SHARE would also block updates of the targets' other columns.
    "postgresql": "FOR KEY SHARE",
    # InnoDB has no lock on the key alone: updates of a locked target wait
    # too. MariaDB has no FOR SHARE; MySQL 8 keeps this spelling.
    "mysql": "LOCK IN SHARE MODE",
}


def shared_lock_sql(alias: str) -> str | None:
    """The clause that locks what a SELECT on ``alias`` reads until its
    transaction ends, or None where no such lock would last."""
    connection = connections[alias]
    if connection.features.has_select_for_update and connection.in_atomic_block:
        return SHARED_LOCKS.get(connection.vendor)
    return None


def locks_rows(alias: str) -> bool:
    """Whether a lock taken now on ``alias`` lasts beyond the statement."""
    return shared_lock_sql(alias) is not None


def found_and_locked(values_list: QuerySet[Any, Any], alias: str) -> list[Any]:
    """The values ``values_list`` (a flat ``values_list()``) reads on
    ``alias``, its rows locked against deletes when the lock can last."""
    lock_sql = shared_lock_sql(alias)
    if lock_sql is None:
        return list(values_list.using(alias))
    compiler = values_list.query.get_compiler(alias)
    sql, params = compiler.as_sql()
    with connections[alias].cursor() as cursor:
        cursor.execute(f"{sql} {lock_sql}", params)
        # Through the field's converters, as Django's own read: MariaDB and
        # MySQL return a UUID as its hex string.
        rows = compiler.results_iter([cursor.fetchall()])
    declare(alias, locks=True)
    return [value for (value,) in rows]


def lock_for_update(model: type[Model], alias: str, pks: set[Any]) -> None:
    """Lock FOR UPDATE the rows of ``model`` with ``pks`` on ``alias``."""
    locked = model._base_manager.using(alias).filter(pk__in=IdSet(pks, model._meta.pk))
    list(locked.select_for_update().values_list("pk"))


def latest_rows(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset``, reading the rows committed by the writers a lock waited
    for, whatever the isolation level of its database's transaction.

    Under InnoDB's REPEATABLE READ a plain read answers from the snapshot
    the transaction took at its first read, maybe before those writers
    committed; a locking read reads the latest rows.
    """
    if locks_rows(queryset.db):
        return queryset.select_for_update()
    return queryset
