"""Factories for the delete graphs, one per model, in both forms."""

import factory

from crossfk.factories import PartitionedModelFactory
from tests.deletecases import models


def graph_factory(model, **declarations):
    """A factory for ``model``; tests name the rows they compare across forms."""
    meta = type("Meta", (), {"model": model})
    declarations.setdefault("name", factory.Sequence(str))
    return type(
        f"{model.__name__}Factory",
        (PartitionedModelFactory,),
        {"Meta": meta, **declarations},
    )


TargetFactory = graph_factory(models.Target)
CascadedFactory = graph_factory(
    models.Cascaded, target=factory.SubFactory(TargetFactory)
)
RestrictedFactory = graph_factory(
    models.Restricted,
    target=factory.SubFactory(TargetFactory),
    cascaded=factory.SubFactory(CascadedFactory),
)
DependentFactory = graph_factory(
    models.Dependent,
    target=factory.SubFactory(TargetFactory),
    cascaded=factory.SubFactory(CascadedFactory),
)
PinnedFactory = graph_factory(
    models.Pinned,
    target=factory.SubFactory(TargetFactory),
    cascaded=factory.SubFactory(CascadedFactory),
)
ParentFactory = graph_factory(models.Parent)
ChildFactory = graph_factory(models.Child, parent=factory.SubFactory(ParentFactory))
NullableChildFactory = graph_factory(
    models.NullableChild, parent=factory.SubFactory(ParentFactory)
)

TwinTargetFactory = graph_factory(models.TwinTarget)
TwinCascadedFactory = graph_factory(
    models.TwinCascaded, target=factory.SubFactory(TwinTargetFactory)
)
TwinRestrictedFactory = graph_factory(
    models.TwinRestricted,
    target=factory.SubFactory(TwinTargetFactory),
    cascaded=factory.SubFactory(TwinCascadedFactory),
)
TwinDependentFactory = graph_factory(
    models.TwinDependent,
    target=factory.SubFactory(TwinTargetFactory),
    cascaded=factory.SubFactory(TwinCascadedFactory),
)
TwinPinnedFactory = graph_factory(
    models.TwinPinned,
    target=factory.SubFactory(TwinTargetFactory),
    cascaded=factory.SubFactory(TwinCascadedFactory),
)
TwinParentFactory = graph_factory(models.TwinParent)
TwinChildFactory = graph_factory(
    models.TwinChild, parent=factory.SubFactory(TwinParentFactory)
)
TwinNullableChildFactory = graph_factory(
    models.TwinNullableChild, parent=factory.SubFactory(TwinParentFactory)
)
