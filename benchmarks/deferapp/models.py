"""Two copies of one relation for ``benchmarks/deferred.py``, alike but for
their ``on_delete``: targets in "default", the rows referring to them in
"secondary".

Each referencing model has its own target model, so that deleting one kind
of target applies one action only: the deferred delete then sends nothing
to "secondary", and the synchronous one writes no outbox row.
"""

from django.db import models

from crossfk import DEFERRED_CASCADE, CrossDBForeignKey, MultiDBManager


class CascadeTarget(models.Model):
    name = models.CharField(max_length=50)

    objects = MultiDBManager("default")

    def __str__(self):
        return self.name


class CascadeRow(models.Model):
    target = CrossDBForeignKey(CascadeTarget, models.CASCADE, related_name="rows")
    text = models.CharField(max_length=50)

    objects = MultiDBManager("secondary")

    def __str__(self):
        return self.text


class DeferredTarget(models.Model):
    name = models.CharField(max_length=50)

    objects = MultiDBManager("default")

    def __str__(self):
        return self.name


class DeferredRow(models.Model):
    target = CrossDBForeignKey(DeferredTarget, DEFERRED_CASCADE, related_name="rows")
    text = models.CharField(max_length=50)

    objects = MultiDBManager("secondary")

    def __str__(self):
        return self.text
