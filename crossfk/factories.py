"""factory_boy support: factories that write to each model's own database."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import router
from django.db.models import Manager, Model

from crossfk.placement import placement_for_model
from crossfk.resolvers import Resolver

try:
    import factory.django
except ImportError as error:  # An optional dependency.
    raise ImportError(
        "crossfk.factories needs factory_boy: pip install 'crossfk[factories]'."
    ) from error


ModelT = TypeVar("ModelT", bound=Model)


class PartitionedModelFactory(factory.django.DjangoModelFactory[ModelT]):
    """A DjangoModelFactory whose database is the router's choice for the model.

    ``factory.SubFactory`` to a model in another database then creates the
    target there and the referencing row here, with no ``database`` option.
    A model a resolver places gets each row where its resolver (or the
    ``crossfk.partition()`` in effect) puts it.
    """

    class Meta:
        abstract = True

    @classmethod
    def _get_manager(cls, model_class: type[Model]) -> Manager[Any]:
        manager: Manager[Any] = super()._get_manager(model_class)  # type: ignore[no-untyped-call]
        if isinstance(placement_for_model(model_class), Resolver):
            return manager  # Its create() places each row as save() does.
        return manager.db_manager(router.db_for_write(model_class))
