"""One delete graph in two families, for the differential delete tests.

``Cross*`` models spread the graph over "default" and "secondary" with
CrossDBForeignKeys; ``Twin*`` models are the same graph with ordinary
ForeignKeys, all in "default". ``build_family()`` declares both at once, in
the same order (Django visits a model's relations in that order), so that
what Django's own Collector does to the twin is what crossfk must do::

    Target (default) <- Child, NullChild, Protected, Restricted, Nulling,
                        Defaulting, Setting, Ignoring (secondary, one
                        on_delete action each)
    Child <- Restricted.child (ordinary CASCADE: a second path to Restricted)
    Child <-(cross) GrandChild (default) -> Target (ordinary RESTRICT)
    GrandChild <-(cross) Leaf (secondary)
"""

from types import SimpleNamespace

from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager


def build_family(prefix: str, crosses: bool) -> SimpleNamespace:
    """The graph's models, named ``prefix + name``; across databases if ``crosses``."""

    def model(model_name, alias, **fields):
        attrs = {
            "__module__": __name__,
            "objects": MultiDBManager(alias if crosses else "default"),
            "name": models.CharField(max_length=20, default=""),
            **fields,
        }
        return type(f"{prefix}{model_name}", (models.Model,), attrs)

    def relation(to, on_delete, **options):
        """A relation that crosses databases in the cross family."""
        if crosses:
            return CrossDBForeignKey(to, on_delete, **options)
        if on_delete is models.DO_NOTHING:
            options["db_constraint"] = False  # crossfk's has none either
        return models.ForeignKey(to, on_delete, **options)

    family = SimpleNamespace()
    family.Target = model("Target", "default")
    family.Child = model(
        "Child",
        "secondary",
        target=relation(family.Target, models.CASCADE, related_name="children"),
    )
    family.NullChild = model(
        "NullChild",
        "secondary",
        target=relation(
            family.Target, models.CASCADE, null=True, related_name="null_children"
        ),
    )
    family.Protected = model(
        "Protected",
        "secondary",
        target=relation(
            family.Target, models.PROTECT, null=True, related_name="protected"
        ),
    )
    family.Restricted = model(
        "Restricted",
        "secondary",
        target=relation(
            family.Target, models.RESTRICT, null=True, related_name="restricted"
        ),
        child=models.ForeignKey(
            family.Child, models.CASCADE, null=True, related_name="restricted"
        ),
    )
    family.Nulling = model(
        "Nulling",
        "secondary",
        target=relation(
            family.Target, models.SET_NULL, null=True, related_name="nulling"
        ),
    )
    family.Defaulting = model(
        "Defaulting",
        "secondary",
        target=relation(
            family.Target,
            models.SET_DEFAULT,
            null=True,
            default=None,
            related_name="defaulting",
        ),
    )
    family.Setting = model(
        "Setting",
        "secondary",
        target=relation(
            family.Target, models.SET(None), null=True, related_name="setting"
        ),
    )
    family.Ignoring = model(
        "Ignoring",
        "secondary",
        target=relation(
            family.Target, models.DO_NOTHING, null=True, related_name="ignoring"
        ),
    )
    family.GrandChild = model(
        "GrandChild",
        "default",
        child=relation(family.Child, models.CASCADE, related_name="grandchildren"),
        target=models.ForeignKey(
            family.Target, models.RESTRICT, null=True, related_name="grandchildren"
        ),
    )
    family.Leaf = model(
        "Leaf",
        "secondary",
        grandchild=relation(
            family.GrandChild, models.CASCADE, null=True, related_name="leaves"
        ),
    )
    return family


CROSS = build_family("Cross", crosses=True)
TWIN = build_family("Twin", crosses=False)
