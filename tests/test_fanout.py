"""``crossfk.fan_out()`` and the relations that read every tenant's database."""

import pytest
from django.db import NotSupportedError
from django.db.models import Avg, Count, Max, Min, Prefetch, Sum

from crossfk import CrossQuerySet, fan_out, partition
from crossfk.testing import assert_queries_per_db
from tests.factories import CustomerFactory, OrderFactory, OrderLineFactory
from tests.tenants.models import TENANTS, Customer, Order, OrderLine

pytestmark = pytest.mark.django_db(databases=["default", *TENANTS])

EACH_TENANT_ONCE = dict.fromkeys(TENANTS, 1)


@pytest.fixture
def placed():
    """Two customers; orders in tenants 0, 3 and 7 (none in the others)."""
    ann, bob = CustomerFactory.create_batch(2)
    orders = {}
    for alias, customer, totals in [
        ("tenant_0", ann, [30, 10]),
        ("tenant_3", bob, [20]),
        ("tenant_7", ann, [40, 5]),
    ]:
        with partition(alias):
            orders[alias] = [
                OrderFactory(customer=customer, total=total) for total in totals
            ]
    return ann, bob, orders


def test_iterating_gives_every_databases_rows_in_placement_order(placed):
    _, _, orders = placed
    with assert_queries_per_db(EACH_TENANT_ONCE):
        rows = list(fan_out(Order.objects.all()))
    assert rows == orders["tenant_0"] + orders["tenant_3"] + orders["tenant_7"]
    assert [row._state.db for row in rows] == [
        "tenant_0",
        "tenant_0",
        "tenant_3",
        "tenant_7",
        "tenant_7",
    ]


def test_an_ordered_queryset_is_merged_in_its_order(placed):
    rows = fan_out(Order.objects.order_by("-total"))
    assert [order.total for order in rows] == [40, 30, 20, 10, 5]
    values = fan_out(Order.objects.order_by("total").values("total"))
    assert [row["total"] for row in values] == [5, 10, 20, 30, 40]


def test_filters_chain_and_run_in_every_database(placed):
    ann, _, orders = placed
    rows = fan_out(Order.objects.all()).filter(customer=ann).exclude(total__lt=10)
    assert list(rows) == [*orders["tenant_0"], orders["tenant_7"][0]]


def test_count_exists_and_aggregates_combine_every_database(placed):
    queryset = fan_out(Order.objects.all())
    with assert_queries_per_db(EACH_TENANT_ONCE):
        assert queryset.count() == 5
    assert queryset.exists()
    assert not fan_out(Order.objects.filter(total=999)).exists()
    assert queryset.aggregate(
        Count("id"), Sum("total"), low=Min("total"), high=Max("total")
    ) == {"id__count": 5, "total__sum": 105, "low": 5, "high": 40}
    assert fan_out(Order.objects.filter(total=999)).aggregate(Sum("total")) == {
        "total__sum": None
    }


def test_an_aggregate_that_does_not_combine_is_refused(placed):
    with pytest.raises(NotSupportedError, match="only Count, Sum, Min and Max"):
        fan_out(Order.objects.all()).aggregate(Avg("total"))
    with pytest.raises(NotSupportedError, match="not distinct counts"):
        fan_out(Order.objects.all()).aggregate(n=Count("total", distinct=True))


def test_delete_deletes_in_every_database_and_counts_them_all(placed):
    with partition("tenant_3"):
        OrderLineFactory(order=Order.objects.get())
    deleted = fan_out(Order.objects.filter(total__gte=20)).delete()
    assert deleted == (4, {"tenants.OrderLine": 1, "tenants.Order": 3})
    assert sorted(order.total for order in fan_out(Order.objects.all())) == [5, 10]
    assert not fan_out(OrderLine.objects.all()).exists()


def test_the_forward_prefetch_of_every_databases_rows_is_one_query(placed):
    ann, bob, _ = placed
    with assert_queries_per_db({**EACH_TENANT_ONCE, "default": 1}):
        rows = list(fan_out(Order.objects.prefetch_cross("customer")))
        assert [order.customer for order in rows] == [ann, ann, bob, ann, ann]


# The reverse accessor -------------------------------------------------------------


def test_the_reverse_accessor_reads_every_tenant_without_a_partition(placed):
    ann, _, orders = placed
    with assert_queries_per_db(EACH_TENANT_ONCE):
        assert list(ann.orders.all()) == orders["tenant_0"] + orders["tenant_7"]
    with assert_queries_per_db(EACH_TENANT_ONCE):
        assert ann.orders.count() == 4
    assert ann.orders.filter(total__gt=20).count() == 2


def test_the_reverse_accessor_reads_only_the_partition_in_effect(placed):
    ann, _, orders = placed
    with partition("tenant_7"), assert_queries_per_db({"tenant_7": 1, "tenant_0": 0}):
        assert list(ann.orders.all()) == orders["tenant_7"]


def test_the_reverse_prefetch_is_one_query_per_tenant(placed):
    ann, bob, orders = placed
    with assert_queries_per_db({**EACH_TENANT_ONCE, "default": 1}):
        customers = list(Customer.objects.order_by("id").prefetch_cross("orders"))
        assert [list(c.orders.all()) for c in customers] == [
            orders["tenant_0"] + orders["tenant_7"],
            orders["tenant_3"],
        ]
    assert customers == [ann, bob]
    assert all(order.customer is customers[0] for order in customers[0].orders.all())


def test_a_prefetch_with_its_own_queryset_is_one_query_per_tenant(placed):
    _, _, orders = placed
    big = Prefetch(
        "orders", queryset=Order.objects.filter(total__gte=20), to_attr="big"
    )
    with assert_queries_per_db({**EACH_TENANT_ONCE, "default": 1}):
        customers = list(Customer.objects.order_by("id").prefetch_cross(big))
    assert [c.big for c in customers] == [
        [orders["tenant_0"][0], orders["tenant_7"][0]],
        orders["tenant_3"],
    ]


def test_the_reverse_prefetch_in_a_partition_reads_only_it(placed):
    _, _, orders = placed
    with partition("tenant_0"), assert_queries_per_db({"tenant_0": 1, "default": 1}):
        (customer, _) = Customer.objects.order_by("id").prefetch_cross("orders")
        assert list(customer.orders.all()) == orders["tenant_0"]


# Filters through the reverse relation ---------------------------------------------


def test_a_reverse_filter_asks_every_tenant_and_unites_the_ids(placed):
    ann, bob, _ = placed
    with assert_queries_per_db({**EACH_TENANT_ONCE, "default": 1}):
        assert list(Customer.objects.filter(orders__total__gte=40)) == [ann]
    assert list(Customer.objects.filter(orders__total=20)) == [bob]
    assert list(Customer.objects.exclude(orders__total__gte=40)) == [bob]


def test_a_reverse_filter_in_a_partition_asks_only_it(placed):
    _, bob, _ = placed
    with partition("tenant_3"), assert_queries_per_db({"tenant_3": 1, "tenant_0": 0}):
        assert list(Customer.objects.filter(orders__total__gt=0)) == [bob]


def test_customers_without_orders_in_any_tenant(placed):
    carol = CustomerFactory()
    assert list(Customer.objects.filter(orders=None)) == [carol]
    with partition("tenant_3"):
        assert list(Customer.objects.filter(orders=None).order_by("id")) == [
            placed[0],
            carol,
        ]


def test_a_filter_across_to_the_shared_table_asks_it_once_for_every_tenant(placed):
    ann, _, orders = placed
    with assert_queries_per_db({**EACH_TENANT_ONCE, "default": 1}):
        rows = list(fan_out(Order.objects.filter(customer__name=ann.name)))
    assert rows == orders["tenant_0"] + orders["tenant_7"]
    with assert_queries_per_db({**EACH_TENANT_ONCE, "default": 1}):
        assert fan_out(Order.objects.filter(customer__name=ann.name)).count() == 4


def test_values_across_the_reverse_relation_read_every_tenant(placed):
    ann, bob, _ = placed
    with assert_queries_per_db({**EACH_TENANT_ONCE, "default": 1}):
        rows = list(
            CrossQuerySet(Customer).order_by("id").values_list("name", "orders__total")
        )
    # As a JOIN: a row per order; each customer's tenant by tenant.
    assert rows == [
        (ann.name, 30),
        (ann.name, 10),
        (ann.name, 40),
        (ann.name, 5),
        (bob.name, 20),
    ]
