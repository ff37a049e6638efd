"""Django's jsonl format; a cross relation's natural key read in its target's
database."""

from django.core.serializers import jsonl
from django.core.serializers.jsonl import Serializer

from crossfk.serializers.python import CrossDeserializerMixin

__all__ = ["Deserializer", "Serializer"]


class Deserializer(CrossDeserializerMixin, jsonl.Deserializer):
    pass
