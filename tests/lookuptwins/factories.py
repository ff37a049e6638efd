"""Factories for both families of the lookup twins, built from the models."""

from crossfk.factories import PartitionedModelFactory
from tests.lookuptwins.models import CROSS, TWIN


def factory_for(model) -> type[PartitionedModelFactory]:
    meta = type("Meta", (), {"model": model})
    return type(f"{model.__name__}Factory", (PartitionedModelFactory,), {"Meta": meta})


def factories_for(family) -> dict[str, type[PartitionedModelFactory]]:
    """``{"Post": CrossPostFactory, ...}`` for one family."""
    return {name: factory_for(model) for name, model in vars(family).items()}


CROSS_FACTORIES = factories_for(CROSS)
TWIN_FACTORIES = factories_for(TWIN)
