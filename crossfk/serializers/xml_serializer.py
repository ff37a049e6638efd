"""Django's XML format; a cross relation's natural key read in its target's
database."""

from __future__ import annotations

from typing import Any

from django.core.serializers import xml_serializer
from django.core.serializers.xml_serializer import Serializer
from django.db.models import Field

from crossfk.fields import CrossDBForeignKey

__all__ = ["Deserializer", "Serializer"]


class Deserializer(xml_serializer.Deserializer):
    def _handle_fk_field_node(self, node: Any, field: Field[Any, Any]) -> Any:
        if not isinstance(field, CrossDBForeignKey):
            return super()._handle_fk_field_node(node, field)  # type: ignore[misc]
        # Django's method reads the database to look in from self.db. No
        # forward reference: the target is loaded into another database, by
        # another loaddata; a missing one is an error now.
        loading = self.db, self.handle_forward_references
        # None (a target placed by key): the router asks, for a natural key only.
        self.db = field.target_alias_of_rows_in(self.db)  # type: ignore[assignment]
        self.handle_forward_references = False
        try:
            return super()._handle_fk_field_node(node, field)  # type: ignore[misc]
        finally:
            self.db, self.handle_forward_references = loading
