"""A database per tenant on PostgreSQL: a cascade into tenants in a two-phase block."""

from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connections

from crossfk import atomic, partition
from tests.factories import CustomerFactory, OrderFactory
from tests.tenants.models import TENANTS, Customer, Order

pytestmark = [
    pytest.mark.django_db(databases=["default", *TENANTS], transaction=True),
    pytest.mark.vendors(default="postgresql", secondary="postgresql"),
]


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
