"""A database per tenant: the cascade's locks and recheck, where the
"default" database, which holds the customers, locks rows."""

import pytest
from django.db import connections

from crossfk import CrossDBTransactionError, partition
from tests.factories import CustomerFactory, OrderFactory
from tests.helpers import insert_at_lock
from tests.tenants.models import TENANTS, Customer, Note, Order

pytestmark = [
    pytest.mark.django_db(databases=["default", *TENANTS], transaction=True),
    pytest.mark.vendors(default=("postgresql", "mysql")),
]


def test_a_reference_written_meanwhile_in_a_tenant_left_out_fails_the_delete():
    # The customer's order is in tenant_1: the delete's block is "default"
    # and tenant_1. A note written in tenant_3 while the customer is being
    # locked is not in the block: the delete deletes nothing and says so.
    customer = CustomerFactory()
    with partition("tenant_1"):
        order = OrderFactory(customer=customer)
    # As another process would, a note committed just before the lock.
    insert = insert_at_lock(
        "tenant_3", Note, customer_id=customer.pk, text="written meanwhile"
    )

    with (
        connections["default"].execute_wrapper(insert),
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
    notes = Note.objects.using("tenant_3").values_list("text", flat=True)
    assert list(notes) == ["written meanwhile"]
