"""The tenant shape: customers in "default", each tenant's orders in a
database of its own (``tenant_0`` ... ``tenant_7``)."""

from django.conf import settings
from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager

TENANTS = [alias for alias in settings.DATABASES if alias.startswith("tenant_")]


class Customer(models.Model):
    name = models.CharField(max_length=100)

    objects = MultiDBManager("default")

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    customer = CrossDBForeignKey(
        Customer, on_delete=models.CASCADE, related_name="orders"
    )
    total = models.IntegerField(default=0)

    objects = MultiDBManager(TENANTS)


class OrderLine(models.Model):
    """A real ForeignKey inside each tenant's database."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=20)

    objects = MultiDBManager(TENANTS)


class Invoice(models.Model):
    """A tenant's row that keeps its customer from being deleted."""

    customer = CrossDBForeignKey(
        Customer, on_delete=models.PROTECT, related_name="invoices"
    )

    objects = MultiDBManager(TENANTS)


class Note(models.Model):
    """Nothing refers to a note: a cascade deletes notes without reading them."""

    customer = CrossDBForeignKey(
        Customer, on_delete=models.CASCADE, related_name="notes"
    )
    text = models.CharField(max_length=100, blank=True)

    objects = MultiDBManager(TENANTS)
