"""A database per tenant on PostgreSQL: the cascade's locks and recheck."""

from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connections

from crossfk import CrossDBTransactionError, atomic, partition
from tests.factories import CustomerFactory, OrderFactory
from tests.tenants.models import TENANTS, Customer, Note, Order

pytestmark = [
    pytest.mark.django_db(databases=["default", *TENANTS], transaction=True),
    pytest.mark.vendors(default="postgresql", secondary="postgresql"),
]


def test_a_reference_written_meanwhile_in_a_tenant_left_out_fails_the_delete():
    # The customer's order is in tenant_1: the delete's block is "default"
    # and tenant_1. A note written in tenant_3 while the customer is being
    # locked is not in the block: the delete deletes nothing and says so.
    customer = CustomerFactory()
    with partition("tenant_1"):
        order = OrderFactory(customer=customer)
    written = []

    def note_while_locking(execute, sql, params, many, context):
        if "FOR UPDATE" in sql and not written:
            # As another process would, committed just before the lock.
            with connections["tenant_3"].cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {Note._meta.db_table} (customer_id, text) "
                    f"VALUES (%s, '') RETURNING id",
                    [customer.pk],
                )
                written.append(cursor.fetchone()[0])
        return execute(sql, params, many, context)

    with (
        connections["default"].execute_wrapper(note_while_locking),
        pytest.raises(CrossDBTransactionError) as raised,
    ):
        customer.delete()

    assert str(raised.value) == (
        f"Deleting Customer {customer.pk}: rows referring to it were written in "
        f"'tenant_3' while it was being collected; nothing was deleted. Delete it "
        f"again."
    )
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert list(Order.objects.using("tenant_1").values_list("pk", flat=True)) == [
        order.pk
    ]
    assert list(Note.objects.using("tenant_3").values_list("pk", flat=True)) == written


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_cascade_into_tenants_in_a_two_phase_block_commits_everywhere_or_recovers():
    customer = CustomerFactory()
    placed = {}
    for alias in ("tenant_0", "tenant_5"):
        with partition(alias):
            placed[alias] = OrderFactory(customer=customer)
    everywhere = ("default", *TENANTS)

    # A crash between the prepares and the commits leaves every database of
    # the block prepared; crossfk_recover commits them all.
    with (
        mock.patch("crossfk.transaction.finish_prepared"),
        atomic(*everywhere, two_phase=True),
    ):
        customer.delete()
    prepared = [alias for alias in everywhere if prepared_gids(alias)]
    assert prepared == list(everywhere)
    assert Customer.objects.filter(pk=placed["tenant_0"].customer_id).exists()

    output = StringIO()
    call_command("crossfk_recover", stdout=output)

    # A delete commits the referencing databases first, the target's last.
    order = ", ".join(map(repr, [*reversed(TENANTS), "default"]))
    assert f"committed on {order} (9 of 9 databases were prepared)" in output.getvalue()
    assert not Customer.objects.exists()
    assert not any(Order.objects.using(alias).exists() for alias in TENANTS)
    assert [alias for alias in everywhere if prepared_gids(alias)] == []


def prepared_gids(alias):
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        )
        return [gid for (gid,) in cursor.fetchall()]
