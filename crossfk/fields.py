"""``CrossDBForeignKey``: a foreign key whose target lives in another database.

It is a ``ForeignKey`` without a database constraint, so Django keeps doing
what it already does well (column naming and type, lazy targets, migrations,
forms, admin widgets, serialization, related managers). crossfk changes only
what cannot work across servers: where the target is read from, how its
existence is enforced, and how ``on_delete`` reaches the other database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core import checks, exceptions
from django.core.exceptions import FieldError
from django.db import models, router
from django.db.models import signals

from crossfk.deletion import CrossOnDelete
from crossfk.descriptors import CrossDBForwardDescriptor, CrossDBReverseDescriptor
from crossfk.exceptions import CrossDBIntegrityError
from crossfk.idsets import IdSet, IdSetIn
from crossfk.locking import found_and_locked
from crossfk.placement import model_aliases, names
from crossfk.transaction import checked_at_commit, declare, note_target_saved

# The one rule for check ids: crossfk's own checks have ids of their own;
# Django's checks of the field keep their message and are renumbered into
# crossfk's namespace by this table, in check(); others keep Django's id.
DJANGO_CHECK_IDS = {
    "fields.E300": "crossfk.E001",  # the target is not installed
    "fields.E302": "crossfk.E005",  # accessor clashes with a field
    "fields.E303": "crossfk.E006",  # query name clashes with a field
    "fields.E304": "crossfk.E005",  # accessor clashes with an accessor
    "fields.E305": "crossfk.E006",  # query name clashes with a query name
}


def renumbered(message: checks.CheckMessage) -> checks.CheckMessage:
    """``message`` with its id in crossfk's namespace, if it has one there."""
    if message.id is not None:
        message.id = DJANGO_CHECK_IDS.get(message.id, message.id)
    return message


def mark_targets_verified(instance: models.Model, field: CrossDBForeignKey) -> None:
    """Record that ``instance``'s current id for ``field`` was just checked.

    ``pre_save()`` trusts the mark while the id is unchanged (Django 6.1
    calls it twice per insert), so a write that sent the pre_save signal or
    went through ``CrossQuerySet.bulk_create()`` is checked exactly once.
    """
    verified = instance._state.__dict__.setdefault("crossfk_verified", {})
    verified[field.attname] = getattr(instance, field.attname)


class CrossDBForeignKey(models.ForeignKey[Any, Any]):
    """A many-to-one relation to a model that may live in another database."""

    forward_related_accessor_class = CrossDBForwardDescriptor
    related_accessor_class = CrossDBReverseDescriptor
    # What crossfk.relations.cross_foreign_keys() looks for.
    crosses_databases = True
    description = "Foreign key (type determined by related field) across databases"

    def __init__(
        self,
        to: type[models.Model] | str,
        on_delete: Callable[..., Any],
        *,
        related_name: str | None = None,
        null: bool = False,
        blank: bool = False,
        db_index: bool = True,
        using: str | None = None,
        enforce: bool = True,
        **kwargs: Any,
    ) -> None:
        if "db_constraint" in kwargs:
            raise TypeError(
                "CrossDBForeignKey does not accept db_constraint: no database "
                "can enforce a constraint that spans two of them."
            )
        if not callable(on_delete):
            raise TypeError("on_delete must be callable.")
        self.using = using
        self.enforce = enforce
        self.cross_on_delete = on_delete
        # Django's Collector would run the action in the target's database;
        # the wrapper re-aims it at this model's database. DO_NOTHING stays
        # itself so the Collector skips the relation as it always does.
        collector_on_delete = (
            on_delete if on_delete is models.DO_NOTHING else CrossOnDelete(on_delete)
        )
        super().__init__(
            to,
            on_delete=collector_on_delete,
            related_name=related_name,
            null=null,
            blank=blank,
            db_index=db_index,
            db_constraint=False,
            **kwargs,
        )

    # Where the two ends live -------------------------------------------------

    @property
    def target_alias(self) -> str:
        """The alias the target rows are read from: ``using``, else the router's."""
        return self.using or router.db_for_read(self.remote_field.model)

    @property
    def referencing_alias(self) -> str:
        """The alias this field's own rows are written to."""
        return router.db_for_write(self.model)

    @property
    def target_aliases(self) -> tuple[str, ...]:
        """Every alias target rows live in."""
        return (self.using,) if self.using else model_aliases(self.remote_field.model)

    @property
    def referencing_aliases(self) -> tuple[str, ...]:
        """Every alias this field's own rows live in (a tenant's each)."""
        return model_aliases(self.model)

    def target_queryset(self) -> models.QuerySet[Any]:
        """All target rows, in the target's database, unfiltered by its managers."""
        return self.remote_field.model._base_manager.using(self.target_alias)

    def describe(self) -> str:
        return f"{self.model._meta.object_name}.{self.name}"

    # Integrity -----------------------------------------------------------------

    def missing_target_ids(self, values: Iterable[Any]) -> list[Any]:
        """The values among ``values`` that no target row has, in one query.

        Inside a transaction on the target's database, the rows found stay
        locked until it ends (``crossfk.locking.found_and_locked``).
        """
        target_field = self.target_field
        wanted = {target_field.to_python(value) for value in values} - {None}
        if not wanted:
            return []
        found_ids = (
            self.target_queryset()
            .filter(**{f"{target_field.attname}__in": IdSet(wanted, target_field)})
            .values_list(target_field.attname, flat=True)
        )
        found = found_and_locked(found_ids, self.target_alias)
        return sorted(wanted - set(found), key=str)

    def check_targets_exist(
        self, values: Iterable[Any], using: str | None = None
    ) -> None:
        """Raise ``CrossDBIntegrityError`` unless every value names a target row.

        ``using`` is the database the references are about to be written to
        (the router's choice for this model by default). Inside transactions,
        that write must commit or roll back with the target's database:
        otherwise ``CrossDBTransactionError`` is raised (see
        ``crossfk.transaction.checked_at_commit``).
        """
        values = [value for value in values if value is not None]
        if not values:
            return
        using = using or self.referencing_alias
        block = checked_at_commit(self, using, f"Writing {self.describe()}")
        missing = self.missing_target_ids(values)
        declare(using, writes=True)
        if block is not None:
            block.check_at_commit(self, using, values)
        if not missing:
            return
        target = self.remote_field.model._meta.object_name
        attname = self.target_field.attname
        shown = ", ".join(repr(value) for value in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise CrossDBIntegrityError(
            f"{self.describe()}: no {target} with {attname} {shown}{more} in "
            f"database '{self.target_alias}'. Save the {target} first, or "
            f"declare the field with enforce=False to allow dangling ids."
        )

    def contribute_to_class(
        self, cls: type[models.Model], name: str, *args: Any, **kwargs: Any
    ) -> None:
        super().contribute_to_class(cls, name, *args, **kwargs)
        if self.enforce and not cls._meta.abstract:
            signals.pre_save.connect(self.check_before_save, sender=cls)

    def contribute_to_related_class(
        self, cls: type[models.Model], related: Any
    ) -> None:
        super().contribute_to_related_class(cls, related)  # type: ignore[misc]
        # A target saved inside crossfk.atomic commits before the references
        # to it: the block must know it was written (see its commit order).
        signals.post_save.connect(note_target_saved, sender=cls)

    def check_before_save(
        self,
        sender: type[models.Model],
        instance: models.Model,
        raw: bool,
        using: str,
        update_fields: Iterable[str] | None,
        **kwargs: Any,
    ) -> None:
        """Check the target before save() touches any database.

        Failing here, before Django opens its own atomic block, leaves the
        caller's transaction usable, as a failed validation would.
        """
        writes_column = update_fields is None or bool(
            {self.name, self.attname} & set(update_fields)
        )
        if raw or not writes_column:
            return  # loaddata, or a save that does not write this column
        value = getattr(instance, self.attname)
        if value is not None:
            self.check_targets_exist([value], using)
            mark_targets_verified(instance, self)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = super().pre_save(model_instance, add)
        # The safety net for writes that sent no pre_save signal (a proxy
        # model's save, bulk_create() on a plain manager). Raw saves never
        # reach pre_save().
        verified = model_instance._state.__dict__.get("crossfk_verified", {})
        already_checked = verified.get(self.attname) == value
        if self.enforce and value is not None and not already_checked:
            self.check_targets_exist([value], model_instance._state.db)
        return value

    def validate(self, value: Any, model_instance: models.Model | None) -> None:
        # ForeignKey.validate() asks the router with the instance as a hint;
        # the target's own alias is the only right place to look.
        models.Field.validate(self, value, model_instance)
        if value is None:
            return
        target_field_name = self.remote_field.field_name
        queryset = (
            self.target_queryset()
            .filter(**{str(target_field_name): value})
            .complex_filter(self.get_limit_choices_to())
        )
        if not queryset.exists():
            raise exceptions.ValidationError(
                "%(model)s instance with %(field)s %(value)r does not exist in "
                "database %(database)r.",
                code="invalid",
                params={
                    "model": self.remote_field.model._meta.verbose_name,
                    "pk": value,
                    "field": target_field_name,
                    "value": value,
                    "database": self.target_alias,
                },
            )

    # Lookups, forms, migrations ---------------------------------------------

    def get_extra_restriction(self, alias: str | None, related_alias: str) -> None:
        # Django asks this of every join it emits over the relation, in either
        # direction, from any queryset: the one place to stop a join that
        # names a table the server does not have.
        referencing = self.model._meta.object_name
        target = self.remote_field.model._meta.object_name
        reverse = self.related_query_name()
        raise FieldError(
            f"Cannot join {referencing} and {target} across databases through "
            f"{self.describe()} ({referencing} in {names(self.referencing_aliases)}, "
            f"{target} in "
            f"{names(self.target_aliases)}). Query them through a MultiDBManager, "
            f"which splits such lookups in two; for a model whose manager you "
            f"cannot replace, wrap it: crossfk.CrossQuerySet({target})"
            f".filter({reverse}__...). Or use prefetch_cross() to load the "
            f"related objects."
        )

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name == "in":
            return IdSetIn
        return super().get_lookup(lookup_name)

    def formfield(self, **kwargs: Any) -> Any:  # type: ignore[override]
        using = kwargs.pop("using", None) or self.target_alias
        return super().formfield(using=using, **kwargs)

    def deconstruct(self) -> Any:
        name, _, args, kwargs = super().deconstruct()
        kwargs["on_delete"] = self.cross_on_delete
        del kwargs["db_constraint"]
        if self.using is not None:
            kwargs["using"] = self.using
        if not self.enforce:
            kwargs["enforce"] = False
        return name, "crossfk.fields.CrossDBForeignKey", args, kwargs

    # System checks -------------------------------------------------------------

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        return [
            *map(renumbered, super().check(**kwargs)),
            *self._check_using_alias(),
            *self._check_same_database(),
        ]

    def _check_using_alias(self) -> list[checks.CheckMessage]:
        if self.using is None or self.using in settings.DATABASES:
            return []
        return [
            checks.Error(
                f"{self.describe()} has using={self.using!r}, which is not a "
                f"key of DATABASES.",
                hint=f"Use one of: {', '.join(map(repr, settings.DATABASES))}.",
                obj=self,
                id="crossfk.E002",
            )
        ]

    def _check_on_delete(
        self, databases: Iterable[str] | None = None
    ) -> list[checks.CheckMessage]:
        on_delete = self.cross_on_delete
        if getattr(on_delete, "__name__", "").startswith("DB_"):
            return [
                checks.Error(
                    f"{self.describe()} has on_delete={on_delete.__name__}, which "
                    f"only a database constraint can carry out.",
                    hint=f"Use {on_delete.__name__.removeprefix('DB_')}: crossfk "
                    f"applies it across databases.",
                    obj=self,
                    id="crossfk.E007",
                )
            ]
        if on_delete is models.SET_NULL and not self.null:
            return [
                checks.Error(
                    f"{self.describe()} has on_delete=SET_NULL but is not null=True.",
                    hint="Set null=True on the field, or choose another on_delete.",
                    obj=self,
                    id="crossfk.E003",
                )
            ]
        if on_delete is models.SET_DEFAULT and not self.has_default():
            return [
                checks.Error(
                    f"{self.describe()} has on_delete=SET_DEFAULT but no default.",
                    hint="Give the field a default, or choose another on_delete.",
                    obj=self,
                    id="crossfk.E004",
                )
            ]
        return []

    def _check_same_database(self) -> list[checks.CheckMessage]:
        unresolved = isinstance(self.remote_field.model, str)
        if unresolved or self._check_using_alias():
            return []  # Reported by the checks above.
        aliases = {*self.target_aliases, *self.referencing_aliases}
        if len(aliases) != 1:
            return []
        return [
            checks.Warning(
                f"{self.describe()} and its target "
                f"{self.remote_field.model._meta.label} both live in database "
                f"'{aliases.pop()}'.",
                hint="A models.ForeignKey would give a real constraint and joins.",
                obj=self,
                id="crossfk.W001",
            )
        ]
