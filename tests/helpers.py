"""What several test modules share: comparing ids, Hypothesis settings, and
a write that races a delete's lock."""

import os

from django.db import connections
from hypothesis import HealthCheck, settings

from crossfk.testing import allow_cross_database


def ids(queryset) -> list:
    """The primary keys a queryset gives, sorted."""
    return sorted(queryset.values_list("pk", flat=True))


def pks(*instances) -> list:
    """The primary keys of ``instances``, sorted."""
    return sorted(instance.pk for instance in instances)


def differential_settings(examples: int) -> settings:
    """Settings for the differential tests: ``examples`` unless overridden.

    CI runs the fixed, derandomized default. ``CROSSFK_HYPOTHESIS_EXAMPLES``
    runs more, and ``CROSSFK_HYPOTHESIS_SEED`` (any value) draws new
    examples instead of the fixed ones.
    """
    return settings(
        max_examples=int(os.environ.get("CROSSFK_HYPOTHESIS_EXAMPLES", examples)),
        derandomize=os.environ.get("CROSSFK_HYPOTHESIS_SEED") is None,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def insert_at_lock(alias: str, model, **values):
    """An execute wrapper that, just before the first FOR UPDATE statement it
    runs, inserts a row of ``model`` in ``alias`` with ``values`` (by column
    name), as another process committing then would."""
    inserted = []

    def insert(execute, sql, params, many, context):
        if "FOR UPDATE" in sql and not inserted:
            columns = ", ".join(values)
            with (
                allow_cross_database(
                    reason="insert_at_lock() writes, on the test's connection, "
                    "the row another process would commit meanwhile"
                ),
                connections[alias].cursor() as cursor,
            ):
                cursor.execute(
                    f"INSERT INTO {model._meta.db_table} ({columns}) "
                    f"VALUES ({', '.join(['%s'] * len(values))})",
                    list(values.values()),
                )
            inserted.append(True)
        return execute(sql, params, many, context)

    return insert
