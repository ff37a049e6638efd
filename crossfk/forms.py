"""The form field of a relation whose target a resolver places (shards).

Django's ``ModelChoiceField`` reads its choices and the chosen row from one
database. A target spread over several has none to give it: the chosen
value is looked up where the target's resolver places it, and the choices
are read from each of its databases (``crossfk.fan_out``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model
from django.forms.models import ModelChoiceField, ModelChoiceIterator

from crossfk.fanout import fan_out, fans_out


class EveryAliasChoiceIterator(ModelChoiceIterator):
    """The choices of every database the target lives in (or of the
    ``crossfk.partition()`` in effect), one query each."""

    def __iter__(self) -> Iterator[Any]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.rows():
            yield self.choice(obj)

    def __len__(self) -> int:
        empty = 1 if self.field.empty_label is not None else 0
        return int(self.rows().count()) + empty

    def __bool__(self) -> bool:
        return self.field.empty_label is not None or self.rows().exists()

    def rows(self) -> Any:
        queryset = self.queryset
        return fan_out(queryset) if fans_out(queryset) else queryset


class ResolvedModelChoiceField(ModelChoiceField):  # type: ignore[type-arg]
    """A ``ModelChoiceField`` for a ``CrossDBForeignKey`` (``cross_field``)
    whose target a resolver places."""

    iterator = EveryAliasChoiceIterator

    def __init__(self, queryset: Any, *, cross_field: Any, **kwargs: Any) -> None:
        super().__init__(queryset, **kwargs)
        self.cross_field = cross_field

    def to_python(self, value: Any) -> Model | None:
        if value in self.empty_values:
            return None
        self.validate_no_null_characters(value)
        field, queryset = self.cross_field, self.queryset
        key = self.to_field_name or "pk"
        if isinstance(value, field.remote_field.model):
            value = getattr(value, key)
        try:
            ids_by_alias = field.target_ids_by_alias({None: [value]})
            rows = field.read_targets(ids_by_alias, queryset)
        except (ValueError, TypeError, ValidationError):
            rows = []
        if not rows:
            raise ValidationError(
                self.error_messages["invalid_choice"],
                code="invalid_choice",
                params={"value": value},
            )
        row: Model = rows[0]
        return row
