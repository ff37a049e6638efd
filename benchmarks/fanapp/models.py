"""The tenant shape at scale: users in "default", each user's orders in its
tenant's database, for ``benchmarks/fanout.py``.

``Order`` is placed by ``CROSSFK_PARTITIONS``, read at each query, so one
process can put it in 8 tenant databases, in 64, or all in one alias, and
compare them on the same rows.
"""

from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager


class User(models.Model):
    name = models.CharField(max_length=100)

    objects = MultiDBManager("default")

    def __str__(self):
        return self.name


class Order(models.Model):
    user = CrossDBForeignKey(User, models.CASCADE, related_name="orders")
    total = models.IntegerField()

    objects = MultiDBManager()

    def __str__(self):
        return f"order {self.pk}"
