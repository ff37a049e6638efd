"""Delete graphs in two forms: across databases, and their one-database twin.

The crossfk form spreads each graph over "default" and "secondary" with
CrossDBForeignKeys. Its twin (the ``Twin`` prefix) is the same graph with
ordinary ForeignKeys, all in "default": Django's own Collector deleting the
twin gives what deleting the crossfk form must give (rows, errors, signals
and their order). ``build_family()`` declares both forms at once, so that
they cannot drift apart, in the same order (Django visits a model's
relations in that order).

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

from types import SimpleNamespace

from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager


def build_family(prefix: str, crosses: bool) -> SimpleNamespace:
    """The graphs' models, named ``prefix + name``; across databases if ``crosses``."""

    def model(model_name, alias, **fields):
        attrs = {
            "__module__": __name__,
            "name": models.CharField(max_length=20),
            "objects": MultiDBManager(alias if crosses else "default"),
            **fields,
        }
        return type(f"{prefix}{model_name}", (models.Model,), attrs)

    def relation(to, on_delete, **options):
        """A relation that crosses databases in the crossfk form."""
        field_class = CrossDBForeignKey if crosses else models.ForeignKey
        return field_class(to, on_delete, **options)

    cascaded = f"deletecases.{prefix}Cascaded"
    family = SimpleNamespace()
    family.Target = model("Target", "default")
    family.Dependent = model(
        "Dependent",
        "default",
        target=models.ForeignKey(
            family.Target, models.RESTRICT, related_name="dependents"
        ),
        cascaded=relation(cascaded, models.CASCADE, related_name="dependents"),
    )
    family.Restricted = model(
        "Restricted",
        "secondary",
        target=relation(family.Target, models.RESTRICT, related_name="restricted"),
        cascaded=models.ForeignKey(cascaded, models.CASCADE, related_name="restricted"),
    )
    family.Cascaded = model(
        "Cascaded",
        "secondary",
        target=relation(family.Target, models.CASCADE, related_name="cascaded"),
    )
    family.Pinned = model(
        "Pinned",
        "secondary",
        target=relation(family.Target, models.CASCADE, related_name="pinned"),
        cascaded=models.ForeignKey(
            family.Cascaded, models.RESTRICT, related_name="pinned"
        ),
    )
    family.Parent = model("Parent", "default")
    family.Child = model(
        "Child",
        "secondary",
        parent=relation(family.Parent, models.CASCADE, related_name="children"),
    )
    family.NullableChild = model(
        "NullableChild",
        "secondary",
        parent=relation(
            family.Parent, models.CASCADE, null=True, related_name="nullable_children"
        ),
    )
    return family


CROSS = build_family("", crosses=True)
TWIN = build_family("Twin", crosses=False)
