"""The tenant shape: customers in "default", each tenant's orders in its own
database, placed with ``MultiDBManager([...])`` and chosen with
``crossfk.partition()``."""

import asyncio
import contextvars
import threading

import pytest
from django.db import connections, transaction
from django.db.models import ProtectedError
from django.utils.connection import ConnectionDoesNotExist

from crossfk import (
    CrossDBIntegrityError,
    CrossDBTransactionError,
    PartitionError,
    atomic,
    partition,
)
from crossfk.placement import active_partition
from crossfk.testing import assert_queries_per_db, capture_queries_per_db
from tests.factories import (
    CustomerFactory,
    InvoiceFactory,
    OrderFactory,
    OrderLineFactory,
)
from tests.tenants.models import TENANTS, Customer, Invoice, Note, Order, OrderLine

pytestmark = pytest.mark.django_db(databases=["default", *TENANTS])

UNPLACED = (
    "tenants.Order lives in 8 databases ('tenant_0', 'tenant_1', 'tenant_2', "
    "'tenant_3', 'tenant_4', 'tenant_5', 'tenant_6', 'tenant_7'): name one with "
    "using(alias), or work inside crossfk.partition(alias)."
)


def orders_by_tenant():
    """{tenant: [order ids]} for the tenants that hold orders."""
    found = {
        alias: list(Order.objects.using(alias).values_list("id", flat=True))
        for alias in TENANTS
    }
    return {alias: ids for alias, ids in found.items() if ids}


def has_table(alias, model):
    with connections[alias].cursor() as cursor:
        tables = connections[alias].introspection.table_names(cursor)
    return model._meta.db_table in tables


# Placement ---------------------------------------------------------------------


def test_each_tenant_database_has_the_tenant_tables_and_only_those():
    for alias in TENANTS:
        assert has_table(alias, Order) and has_table(alias, OrderLine)
        assert not has_table(alias, Customer)
    assert has_table("default", Customer)
    assert not has_table("default", Order)


def test_a_query_without_a_partition_raises_naming_the_model_and_its_databases():
    with pytest.raises(PartitionError) as raised:
        list(Order.objects.all())
    assert str(raised.value) == UNPLACED


def test_a_write_without_a_partition_raises_and_writes_nothing():
    customer = CustomerFactory()
    with pytest.raises(PartitionError, match=r"tenants\.Order lives in 8 databases"):
        Order.objects.create(customer=customer)
    assert orders_by_tenant() == {}


def test_a_partition_places_new_rows_in_its_database():
    customer = CustomerFactory()
    with partition("tenant_3"):
        order = OrderFactory(customer=customer)
        assert list(Order.objects.all()) == [order]
    assert order._state.db == "tenant_3"
    assert orders_by_tenant() == {"tenant_3": [order.pk]}


def test_using_names_a_tenant_without_a_partition():
    customer = CustomerFactory()
    order = Order.objects.using("tenant_5").create(customer=customer, total=7)
    assert Order.objects.using("tenant_5").get().total == 7
    assert orders_by_tenant() == {"tenant_5": [order.pk]}


def test_a_row_is_saved_back_where_it_was_read_whatever_the_partition():
    with partition("tenant_1"):
        order = OrderFactory(total=1)
    with partition("tenant_2"):
        order.total = 2
        order.save()
        assert not Order.objects.exists()
    assert Order.objects.using("tenant_1").get().total == 2


def test_a_partition_does_not_move_a_model_placed_in_one_database():
    with partition("tenant_4"):
        customer = CustomerFactory()
        assert Customer.objects.get() == customer
    assert customer._state.db == "default"


def test_a_partition_the_model_is_not_placed_in_raises():
    with partition("secondary"), pytest.raises(PartitionError) as raised:
        Order.objects.count()
    assert str(raised.value) == (
        "tenants.Order is not placed in 'secondary', the crossfk.partition() in "
        "effect; it lives in 'tenant_0', 'tenant_1', 'tenant_2', 'tenant_3', "
        "'tenant_4', 'tenant_5', 'tenant_6', 'tenant_7'."
    )


def test_a_partition_of_an_unknown_alias_raises_at_once():
    with pytest.raises(ConnectionDoesNotExist, match="'tenant_9' is not a key"):
        partition("tenant_9")


def test_partitions_nest_and_end_with_their_block():
    with partition("tenant_0"):
        with partition("tenant_1"):
            assert active_partition() == "tenant_1"
        assert active_partition() == "tenant_0"
    assert active_partition() is None


def test_a_locked_partition_refuses_another_alias_inside_it():
    with partition("tenant_0", lock=True):
        with partition("tenant_0"):
            assert active_partition() == "tenant_0"
        refused = pytest.raises(
            PartitionError, match=r"inside crossfk.partition\('tenant_0', lock=True\)"
        )
        with refused, partition("tenant_1"):
            pass
        assert active_partition() == "tenant_0"


def test_a_lock_holds_in_nested_blocks_that_do_not_ask_for_it():
    with (
        partition("tenant_0", lock=True),
        partition("tenant_0"),
        pytest.raises(PartitionError),
        partition("tenant_1"),
    ):
        pass


def test_partition_decorates_a_function_each_call_its_own_block():
    seen = []

    @partition("tenant_6")
    def count_orders(depth):
        seen.append(active_partition())
        if depth:
            count_orders(depth - 1)
        return Order.objects.count()

    with partition("tenant_6"):
        OrderFactory()
    assert count_orders(1) == 1
    assert seen == ["tenant_6", "tenant_6"]
    assert active_partition() is None


def test_a_thread_sees_the_partition_of_the_context_it_was_given():
    seen = {}

    def record(name):
        seen[name] = active_partition()

    with partition("tenant_2"):
        context = contextvars.copy_context()
        given = threading.Thread(target=context.run, args=(record, "given"))
        bare = threading.Thread(target=record, args=("bare",))
        for thread in (given, bare):
            thread.start()
            thread.join()
    assert seen == {"given": "tenant_2", "bare": None}


def test_asyncio_tasks_keep_their_own_partitions():
    async def in_partition(alias, entered, other_entered):
        with partition(alias):
            entered.set()
            await other_entered.wait()  # both blocks are open now
            return active_partition()

    async def main():
        first, second = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(
            in_partition("tenant_1", first, second),
            in_partition("tenant_2", second, first),
        )

    assert asyncio.run(main()) == ["tenant_1", "tenant_2"]


# The relation to the shared table -------------------------------------------


def test_an_order_reads_its_customer_from_default():
    with partition("tenant_4"):
        order = OrderFactory()
        order = Order.objects.get()
    with assert_queries_per_db({"default": 1, "tenant_4": 0}):
        assert order.customer.name.startswith("Customer")


def test_prefetching_the_customers_of_a_tenants_orders_is_one_query():
    customers = CustomerFactory.create_batch(3)
    with partition("tenant_7"):
        for customer in customers * 2:
            OrderFactory(customer=customer)
        with assert_queries_per_db({"tenant_7": 1, "default": 1}):
            orders = list(Order.objects.prefetch_cross("customer"))
            assert [order.customer for order in orders] == customers * 2


def test_a_real_foreign_key_inside_a_tenant_follows_the_rows_database():
    with partition("tenant_5"):
        line = OrderLineFactory()
    line = OrderLine.objects.using("tenant_5").get()
    with assert_queries_per_db({"tenant_5": 2}):
        assert line.order.lines.get() == line


def test_an_order_for_a_missing_customer_is_refused_in_its_tenant():
    with partition("tenant_2"), pytest.raises(CrossDBIntegrityError) as raised:
        Order.objects.create(customer_id=404)
    assert str(raised.value) == (
        "Order.customer: no Customer with id 404 in database 'default'. Save the "
        "Customer first, or declare the field with enforce=False to allow "
        "dangling ids."
    )
    assert orders_by_tenant() == {}


def test_the_reverse_accessor_reads_the_partitions_orders():
    customer = CustomerFactory()
    with partition("tenant_1"):
        mine = OrderFactory(customer=customer)
    with partition("tenant_2"):
        OrderFactory(customer=customer)
    with partition("tenant_1"):
        assert list(customer.orders.all()) == [mine]


# Deleting the shared row ----------------------------------------------------------


def test_deleting_a_customer_cascades_into_every_tenant_that_has_its_orders():
    customer, other = CustomerFactory.create_batch(2)
    placed = {}
    for alias in ("tenant_1", "tenant_4"):
        with partition(alias):
            placed[alias] = OrderLineFactory(order__customer=customer).order
    with partition("tenant_4"):
        kept = OrderFactory(customer=other)
        Note.objects.create(customer=customer)
    untouched = [alias for alias in TENANTS if alias not in placed]

    with capture_queries_per_db(TENANTS) as captured:
        deleted = customer.delete()

    # A tenant without the customer's rows is read (its orders, whether it
    # has notes, its invoices: PROTECT; again under the lock on PostgreSQL),
    # and not written: it is left out of the block.
    assert {
        alias: {query["sql"].split()[0] for query in captured[alias]}
        for alias in untouched
    } == {alias: {"SELECT"} for alias in untouched}

    assert deleted == (
        6,
        {
            "tenants.Customer": 1,
            "tenants.Note": 1,
            "tenants.Order": 2,
            "tenants.OrderLine": 2,
        },
    )
    assert orders_by_tenant() == {"tenant_4": [kept.pk]}
    assert not any(OrderLine.objects.using(alias).exists() for alias in TENANTS)
    assert list(Customer.objects.all()) == [other]


def test_a_protected_row_in_one_tenant_blocks_the_delete_everywhere():
    customer = CustomerFactory()
    with partition("tenant_0"):
        order = OrderFactory(customer=customer)
    with partition("tenant_6"):
        invoice = InvoiceFactory(customer=customer)

    with pytest.raises(ProtectedError) as raised:
        customer.delete()

    assert raised.value.protected_objects == {invoice}
    assert orders_by_tenant() == {"tenant_0": [order.pk]}
    assert Customer.objects.get() == customer
    assert Invoice.objects.using("tenant_6").get() == invoice


# Blocks that name no database ------------------------------------------------


@pytest.mark.django_db(databases=["default", "secondary", *TENANTS])
def test_a_bare_atomic_covers_the_pinned_databases_and_the_partition():
    with atomic() as block:
        assert "tenant_3" not in block.aliases
        assert "default" in block.aliases
    with partition("tenant_3"), atomic() as block:
        assert "tenant_3" in block.aliases
        assert connections["tenant_3"].in_atomic_block


# Transactions around the cascade ---------------------------------------------------


@pytest.mark.django_db(databases=["default", *TENANTS], transaction=True)
def test_a_cascade_into_tenants_rolls_back_with_the_crossfk_atomic_around_it():
    customer = CustomerFactory()
    for alias in ("tenant_2", "tenant_6"):
        with partition(alias):
            OrderLineFactory(order__customer=customer)

    customer_pk = customer.pk
    with pytest.raises(RuntimeError), atomic("default", *TENANTS):
        customer.delete()
        raise RuntimeError("after the delete")

    assert Customer.objects.get().pk == customer_pk
    assert sorted(orders_by_tenant()) == ["tenant_2", "tenant_6"]
    assert all(
        OrderLine.objects.using(a).count() == 1 for a in ("tenant_2", "tenant_6")
    )


@pytest.mark.django_db(databases=["default", *TENANTS], transaction=True)
def test_a_cascade_into_a_tenant_out_of_a_django_block_is_refused():
    customer = CustomerFactory()
    with partition("tenant_5"):
        order = OrderFactory(customer=customer)

    with (
        transaction.atomic(using="default"),
        pytest.raises(CrossDBTransactionError) as raised,
    ):
        customer.delete()

    assert "'tenant_5' is in no transaction" in str(raised.value)
    assert Customer.objects.get() == customer
    assert orders_by_tenant() == {"tenant_5": [order.pk]}


@pytest.mark.django_db(databases=["default", *TENANTS], transaction=True)
def test_a_cascade_with_nothing_in_the_tenants_is_allowed_in_a_django_block():
    customer = CustomerFactory()
    with transaction.atomic(using="default"):
        assert customer.delete() == (1, {"tenants.Customer": 1})
    assert not Customer.objects.exists()
