"""Natural foreign keys across databases in ``loaddata``.

Django's deserializers look a natural foreign key up in the database being
loaded (``loaddata --database``), where a CrossDBForeignKey's target table
does not exist. Django offers no hook per field, so crossfk wraps the one
function they call (``deserialize_fk_value``, shared by the JSON, YAML and
Python formats) to send that lookup to the target's own database.
"""

from django.core.serializers import base

from crossfk.fields import CrossDBForeignKey

django_deserialize_fk_value = base.deserialize_fk_value


def deserialize_fk_value(field, field_value, using, handle_forward_references):
    if isinstance(field, CrossDBForeignKey):
        using = field.target_alias
    return django_deserialize_fk_value(
        field, field_value, using, handle_forward_references
    )


def install() -> None:
    """Route natural-key lookups of cross relations; called by the AppConfig."""
    base.deserialize_fk_value = deserialize_fk_value
