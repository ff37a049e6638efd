"""Django's Python format; a cross relation's natural key read in its target's
database."""

from __future__ import annotations

from typing import Any

from django.core.serializers import base, python
from django.core.serializers.python import Serializer
from django.db.models import Field

from crossfk.fields import CrossDBForeignKey

__all__ = ["Deserializer", "Serializer"]


class CrossDeserializerMixin:
    """For the Python-based deserializers (python, json, jsonl, yaml)."""

    def _handle_fk_field_node(self, field: Field[Any, Any], field_value: Any) -> Any:
        if isinstance(field, CrossDBForeignKey):
            # No forward reference: the target is loaded into another
            # database, by another loaddata; a missing one is an error now.
            return base.deserialize_fk_value(
                field,
                field_value,
                field.target_alias_of_rows_in(self.using),  # type: ignore[attr-defined]
                handle_forward_references=False,
            )
        return super()._handle_fk_field_node(field, field_value)  # type: ignore[misc]


class Deserializer(CrossDeserializerMixin, python.Deserializer):
    pass
