"""PostgreSQL: references created between collecting and deleting.

On PostgreSQL a delete locks its targets, then runs CASCADE, PROTECT and
RESTRICT once more, so that what a concurrent writer referenced meanwhile
is cascaded or blocks the delete. Collecting, then writing, then deleting
makes that race deterministic.
"""

import pytest
from django.db import connections, transaction
from django.db.models import RestrictedError
from django.db.models.deletion import Collector

from crossfk import CrossDBTransactionError
from tests.deletecases.factories import CROSS_FACTORIES
from tests.deletecases.models import CROSS

Target, Cascaded, Restricted = CROSS.Target, CROSS.Cascaded, CROSS.Restricted
TargetFactory = CROSS_FACTORIES["Target"]
CascadedFactory = CROSS_FACTORIES["Cascaded"]
RestrictedFactory = CROSS_FACTORIES["Restricted"]

pytestmark = [
    pytest.mark.django_db(databases=["default", "secondary"]),
    pytest.mark.vendors(default="postgresql", secondary="postgresql"),
]


def collected(target):
    """A Collector that collected ``target``, as ``target.delete()`` makes it."""
    collector = Collector(using="default", origin=target)
    collector.collect([target])
    return collector


def test_reference_restricted_since_collecting_blocks_the_delete():
    target = TargetFactory()
    collector = collected(target)
    restricted = RestrictedFactory(
        target=target, cascaded=CascadedFactory(target=TargetFactory())
    )

    with pytest.raises(RestrictedError) as raised:
        collector.delete()

    assert raised.value.args[0] == (
        "Cannot delete some instances of model 'Target' because they are "
        "referenced through restricted foreign keys: 'Restricted.target'."
    )
    assert raised.value.restricted_objects == {restricted}
    assert Target.objects.filter(pk=target.pk).exists()
    assert Restricted.objects.filter(pk=restricted.pk).exists()


def test_reference_restricted_and_cascaded_since_collecting_is_deleted():
    target = TargetFactory()
    collector = collected(target)
    cascaded = CascadedFactory(target=target)
    restricted = RestrictedFactory(target=target, cascaded=cascaded)

    deleted = collector.delete()

    assert deleted == (
        3,
        {
            "deletecases.Target": 1,
            "deletecases.Cascaded": 1,
            "deletecases.Restricted": 1,
        },
    )
    assert not Cascaded.objects.filter(pk=cascaded.pk).exists()
    assert not Restricted.objects.filter(pk=restricted.pk).exists()


def test_reference_created_in_a_database_left_out_of_the_block_refuses_the_delete():
    # Inside transaction.atomic() on "default", a target without references
    # writes only "default". A reference created in "secondary" while the
    # delete takes its lock cannot be cascaded there: "secondary" is in no
    # transaction that the outer block settles.
    target = TargetFactory()
    created = []

    def reference_while_locking(execute, sql, params, many, context):
        if "FOR UPDATE" in sql and not created:
            with connections["secondary"].cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {Cascaded._meta.db_table} (name, target_id) "
                    f"VALUES (%s, %s) RETURNING id",
                    ["made meanwhile", target.pk],
                )
                created.append(cursor.fetchone()[0])
        return execute(sql, params, many, context)

    with (
        transaction.atomic(),
        connections["default"].execute_wrapper(reference_while_locking),
        pytest.raises(CrossDBTransactionError, match="The delete's recheck needs"),
    ):
        target.delete()

    assert Target.objects.filter(pk=target.pk).exists()
    assert list(Cascaded.objects.values_list("pk", flat=True)) == created
