"""Row locks that keep references and their targets consistent on PostgreSQL.

A write of references reads the targets in one database and writes in
another; a delete of targets reads the references in one database and
deletes in another. Run concurrently, each could miss what the other is
about to commit. Two lock styles, one on each side, make the later one see
the earlier:

- the references' writer locks the targets it found FOR KEY SHARE, until
  the transaction on the target's database ends (``found_and_locked``);
- the delete locks its targets FOR UPDATE (``lock_for_update``), which
  waits for those writers to commit, then reads the references again.

Other backends take no lock: SQLite serializes writers on each database.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet

from crossfk.idsets import IdSet
from crossfk.transaction import declare


def locks_rows(alias: str) -> bool:
    """Whether a lock taken now on ``alias`` lasts beyond the statement."""
    connection = connections[alias]
    return connection.vendor == "postgresql" and connection.in_atomic_block


def found_and_locked(values_list: QuerySet[Any, Any], alias: str) -> list[Any]:
    """The values ``values_list`` (a flat ``values_list()``) reads on
    ``alias``, its rows locked FOR KEY SHARE when the lock can last."""
    if not locks_rows(alias):
        return list(values_list.using(alias))
    # Django has no FOR KEY SHARE; FOR SHARE would also block updates of the
    # targets' other columns.
    sql, params = values_list.query.get_compiler(alias).as_sql()
    with connections[alias].cursor() as cursor:
        cursor.execute(f"{sql} FOR KEY SHARE", params)
        rows = cursor.fetchall()
    declare(alias, locks=True)
    return [value for (value,) in rows]


def lock_for_update(model: type[Model], alias: str, pks: set[Any]) -> None:
    """Lock FOR UPDATE the rows of ``model`` with ``pks`` on ``alias``."""
    locked = model._base_manager.using(alias).filter(pk__in=IdSet(pks, model._meta.pk))
    list(locked.select_for_update().values_list("pk"))
