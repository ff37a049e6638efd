"""A database per tenant: each shop's orders in a database of its own, for
customers (Django's own users) in the shared "default" database."""

from django.conf import settings
from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager

# ./demo/run --tenants N adds tenant_0 ... tenant_{N-1} to DATABASES.
TENANTS = [alias for alias in settings.DATABASES if alias.startswith("tenant_")]


class Order(models.Model):
    customer = CrossDBForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders"
    )
    total = models.IntegerField()

    # Without tenants, the orders table waits in "secondary".
    objects = MultiDBManager(TENANTS or ["secondary"])

    def __str__(self) -> str:
        return f"Order {self.pk} of {self.total}"
