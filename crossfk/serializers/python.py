"""Django's Python format; a cross relation's natural key read in its target's
database."""

from django.core.serializers import base, python
from django.core.serializers.python import Serializer

from crossfk.fields import CrossDBForeignKey

__all__ = ["Deserializer", "Serializer"]


class CrossDeserializerMixin:
    """For the Python-based deserializers (python, json, jsonl, yaml)."""

    def _handle_fk_field_node(self, field, field_value):
        if isinstance(field, CrossDBForeignKey):
            # No forward reference: the target is loaded into another
            # database, by another loaddata; a missing one is an error now.
            return base.deserialize_fk_value(
                field, field_value, field.target_alias, handle_forward_references=False
            )
        return super()._handle_fk_field_node(field, field_value)


class Deserializer(CrossDeserializerMixin, python.Deserializer):
    pass
