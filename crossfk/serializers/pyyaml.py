"""Django's YAML format; a cross relation's natural key read in its target's
database."""

from django.core.serializers import pyyaml
from django.core.serializers.pyyaml import Serializer

from crossfk.serializers.python import CrossDeserializerMixin

__all__ = ["Deserializer", "Serializer"]


class Deserializer(CrossDeserializerMixin, pyyaml.Deserializer):
    pass
