"""Natural foreign keys across databases in ``loaddata``, for every format.

Django's deserializers look a natural foreign key up in the database being
loaded (``loaddata --database``), where a CrossDBForeignKey's target table
does not exist. Each Deserializer hands a foreign key to its
``_handle_fk_field_node()``; crossfk's subclasses send the lookup of a
cross relation to the target's own database, and are registered through
Django's serialization registry (what ``SERIALIZATION_MODULES`` configures)
for the built-in formats a project has not replaced.
"""

from django.conf import settings
from django.core import serializers

# Django's built-in formats, and crossfk's module for each.
FORMATS = {
    "json": "crossfk.serializers.json",
    "jsonl": "crossfk.serializers.jsonl",
    "python": "crossfk.serializers.python",
    "xml": "crossfk.serializers.xml_serializer",
    "yaml": "crossfk.serializers.pyyaml",
}


def install() -> None:
    """Register crossfk's deserializers; called by the AppConfig."""
    replaced = getattr(settings, "SERIALIZATION_MODULES", {})
    for name, module in FORMATS.items():
        # The project's own module for a format wins. Without PyYAML, "yaml"
        # registers as Django's BadSerializer, as Django's own would.
        if name not in replaced:
            serializers.register_serializer(name, module)
