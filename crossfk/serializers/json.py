"""Django's json format; a cross relation's natural key read in its target's
database."""

from django.core.serializers import json
from django.core.serializers.json import Serializer

from crossfk.serializers.python import CrossDeserializerMixin

__all__ = ["Deserializer", "Serializer"]


class Deserializer(CrossDeserializerMixin, json.Deserializer):
    pass
