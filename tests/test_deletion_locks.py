"""References created between collecting and deleting.

Where the targets' database locks rows (PostgreSQL, MariaDB, MySQL), a
delete locks its targets, then runs CASCADE, PROTECT and RESTRICT once
more, so that what a concurrent writer referenced meanwhile is cascaded or
blocks the delete. Collecting, then writing, then deleting makes that race
deterministic.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections, transaction
from django.db.models import RestrictedError
from django.db.models.deletion import Collector

from crossfk import CrossDBTransactionError, atomic
from tests.deletecases.factories import CROSS_FACTORIES
from tests.deletecases.models import CROSS
from tests.helpers import insert_at_lock

Target, Cascaded, Restricted = CROSS.Target, CROSS.Cascaded, CROSS.Restricted
TargetFactory = CROSS_FACTORIES["Target"]
CascadedFactory = CROSS_FACTORIES["Cascaded"]
RestrictedFactory = CROSS_FACTORIES["Restricted"]

pytestmark = [
    pytest.mark.django_db(databases=["default", "secondary"]),
    # The targets' database: the one whose locks make the recheck needed.
    pytest.mark.vendors(default=("postgresql", "mysql")),
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
    insert = insert_at_lock(
        "secondary", Cascaded, name="made meanwhile", target_id=target.pk
    )

    with (
        transaction.atomic(),
        connections["default"].execute_wrapper(insert),
        pytest.raises(CrossDBTransactionError, match="The delete's recheck needs"),
    ):
        target.delete()

    assert Target.objects.filter(pk=target.pk).exists()
    assert list(Cascaded.objects.values_list("name", flat=True)) == ["made meanwhile"]


# InnoDB's REPEATABLE READ: the references' database read before the delete --


@pytest.fixture
def repeatable_read():
    """The "secondary" connection in REPEATABLE READ, as its OPTIONS'
    isolation_level would set it; a new connection after the test."""
    connection = connections["secondary"]
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SELECT @@tx_isolation")
        assert cursor.fetchone() == ("REPEATABLE-READ",)
    yield
    connection.close()


def committed_elsewhere(make):
    """What ``make()`` returns, written and committed on the connections of
    another thread, as another process would."""

    def make_and_close():
        try:
            return make()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(make_and_close).result()


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
@pytest.mark.vendors(secondary="mysql")
def test_reference_restricted_after_the_snapshot_blocks_the_delete(repeatable_read):
    # The block's first read on "secondary" takes its snapshot: a plain
    # read there would not see the row committed after it.
    target = TargetFactory()
    collector = collected(target)

    with pytest.raises(RestrictedError) as raised, atomic("default", "secondary"):
        assert not Restricted.objects.exists()
        restricted = committed_elsewhere(
            lambda: RestrictedFactory(
                target=target, cascaded=CascadedFactory(target=TargetFactory())
            )
        )
        collector.delete()

    assert raised.value.restricted_objects == {restricted}
    assert Target.objects.filter(pk=target.pk).exists()


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
@pytest.mark.vendors(secondary="mysql")
def test_reference_cascaded_after_the_snapshot_is_deleted(repeatable_read):
    # Restricted rows refer to Cascaded: its rows are read, not fast-deleted.
    target = TargetFactory()
    collector = collected(target)

    with atomic("default", "secondary"):
        assert not Cascaded.objects.exists()
        cascaded = committed_elsewhere(lambda: CascadedFactory(target=target))
        deleted = collector.delete()

    assert deleted == (2, {"deletecases.Target": 1, "deletecases.Cascaded": 1})
    assert not Cascaded.objects.filter(pk=cascaded.pk).exists()
    assert not Target.objects.filter(pk=target.pk).exists()
