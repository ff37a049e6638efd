"""Delete graphs in two forms: across databases, and their one-database twin.

The crossfk form spreads each graph over "default" and "secondary" with
CrossDBForeignKeys. Its twin (the ``Twin`` prefix) is the same graph with
ordinary ForeignKeys, all in "default": Django's own Collector deleting the
twin gives what deleting the crossfk form must give (rows, errors, signals
and their order). Models are declared in the same order in both forms,
since Django visits a model's relations in that order.

Target (T), Dependent (D), Restricted (R), Cascaded (S), Pinned (P)::

    D.target   -> T  RESTRICT  ordinary, in T's own database
    R.target   -> T  RESTRICT  across databases
    S.target   -> T  CASCADE   across databases
    P.target   -> T  CASCADE   across databases
    D.cascaded -> S  CASCADE   across databases, back to T's database
    R.cascaded -> S  CASCADE   ordinary, in S's database
    P.cascaded -> S  RESTRICT  ordinary, in S's database

Deleting T restricts D and R and cascades them through S; it restricts P
through S and cascades it directly.
Parent, Child (non-null) and NullableChild: one CASCADE each, for the order
Django gives referencing rows with and without a dependency.
"""

from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager


class Target(models.Model):
    name = models.CharField(max_length=20)

    objects = MultiDBManager("default")


class Dependent(models.Model):
    name = models.CharField(max_length=20)
    target = models.ForeignKey(Target, models.RESTRICT, related_name="dependents")
    cascaded = CrossDBForeignKey(
        "deletecases.Cascaded", models.CASCADE, related_name="dependents"
    )

    objects = MultiDBManager("default")


class Restricted(models.Model):
    name = models.CharField(max_length=20)
    target = CrossDBForeignKey(Target, models.RESTRICT, related_name="restricted")
    cascaded = models.ForeignKey(
        "deletecases.Cascaded", models.CASCADE, related_name="restricted"
    )

    objects = MultiDBManager("secondary")


class Cascaded(models.Model):
    name = models.CharField(max_length=20)
    target = CrossDBForeignKey(Target, models.CASCADE, related_name="cascaded")

    objects = MultiDBManager("secondary")


class Pinned(models.Model):
    name = models.CharField(max_length=20)
    target = CrossDBForeignKey(Target, models.CASCADE, related_name="pinned")
    cascaded = models.ForeignKey(Cascaded, models.RESTRICT, related_name="pinned")

    objects = MultiDBManager("secondary")


class Parent(models.Model):
    name = models.CharField(max_length=20)

    objects = MultiDBManager("default")


class Child(models.Model):
    name = models.CharField(max_length=20)
    parent = CrossDBForeignKey(Parent, models.CASCADE, related_name="children")

    objects = MultiDBManager("secondary")


class NullableChild(models.Model):
    name = models.CharField(max_length=20)
    parent = CrossDBForeignKey(
        Parent, models.CASCADE, null=True, related_name="nullable_children"
    )

    objects = MultiDBManager("secondary")


class TwinTarget(models.Model):
    name = models.CharField(max_length=20)


class TwinDependent(models.Model):
    name = models.CharField(max_length=20)
    target = models.ForeignKey(TwinTarget, models.RESTRICT, related_name="dependents")
    cascaded = models.ForeignKey(
        "deletecases.TwinCascaded", models.CASCADE, related_name="dependents"
    )


class TwinRestricted(models.Model):
    name = models.CharField(max_length=20)
    target = models.ForeignKey(TwinTarget, models.RESTRICT, related_name="restricted")
    cascaded = models.ForeignKey(
        "deletecases.TwinCascaded", models.CASCADE, related_name="restricted"
    )


class TwinCascaded(models.Model):
    name = models.CharField(max_length=20)
    target = models.ForeignKey(TwinTarget, models.CASCADE, related_name="cascaded")


class TwinPinned(models.Model):
    name = models.CharField(max_length=20)
    target = models.ForeignKey(TwinTarget, models.CASCADE, related_name="pinned")
    cascaded = models.ForeignKey(TwinCascaded, models.RESTRICT, related_name="pinned")


class TwinParent(models.Model):
    name = models.CharField(max_length=20)


class TwinChild(models.Model):
    name = models.CharField(max_length=20)
    parent = models.ForeignKey(TwinParent, models.CASCADE, related_name="children")


class TwinNullableChild(models.Model):
    name = models.CharField(max_length=20)
    parent = models.ForeignKey(
        TwinParent, models.CASCADE, null=True, related_name="nullable_children"
    )
