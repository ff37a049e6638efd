"""Factories for the delete graphs, one per model, in both forms."""

import factory

from tests.deletecases.models import CROSS, TWIN
from tests.factories import factory_for

# Model name -> its references to other models of the graph, made by default.
REFERENCES = {
    "Target": {},
    "Cascaded": {"target": "Target"},
    "Restricted": {"target": "Target", "cascaded": "Cascaded"},
    "Dependent": {"target": "Target", "cascaded": "Cascaded"},
    "Pinned": {"target": "Target", "cascaded": "Cascaded"},
    "Parent": {},
    "Child": {"parent": "Parent"},
    "NullableChild": {"parent": "Parent"},
}


def graph_factories(family) -> dict:
    """A factory per model of ``family``; tests name the rows they compare."""
    made = {}
    for name, references in REFERENCES.items():
        made[name] = type(
            f"{name}Factory",
            (factory_for(getattr(family, name)),),
            {
                "name": factory.Sequence(str),
                **{
                    field: factory.SubFactory(made[target])
                    for field, target in references.items()
                },
            },
        )
    return made


CROSS_FACTORIES = graph_factories(CROSS)
TWIN_FACTORIES = graph_factories(TWIN)
