"""``CrossDBForeignKey``: a foreign key whose target lives in another database.

It is a ``ForeignKey`` without a database constraint, so Django keeps doing
what it already does well (column naming and type, lazy targets, migrations,
forms, admin widgets, serialization, related managers). crossfk changes only
what cannot work across servers: where the target is read from, how its
existence is enforced, and how ``on_delete`` reaches the other database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.core import checks, exceptions
from django.core.exceptions import FieldError
from django.db import models, router
from django.db.models import signals
from django.db.models.sql import Query

from crossfk.deferred import DEFERRED_SET_NULL
from crossfk.deletion import CrossOnDelete
from crossfk.descriptors import CrossDBForwardDescriptor, CrossDBReverseDescriptor
from crossfk.exceptions import CrossDBIntegrityError, PartitionError
from crossfk.forms import ResolvedModelChoiceField
from crossfk.idsets import BesideTheQuery, ColumnValues, IdSet, IdSetIn
from crossfk.locking import found_and_locked
from crossfk.parallel import run_per_alias
from crossfk.placement import model_aliases, names, placement_for_model
from crossfk.resolvers import (
    IdsByReferencingAlias,
    Resolver,
    in_databases,
    placed_ids,
    shown_ids,
)
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


class ColumnValuesEverywhere:
    """``ColumnValues`` of several aliases: a lazy source for an ``IdSet``."""

    def __init__(self, query: Query, aliases: Iterable[str]) -> None:
        self.query, self.aliases = query, tuple(aliases)

    def __iter__(self) -> Iterator[Any]:
        # A clone each: compiling changes a query, and the reads run at once.
        values = run_per_alias(
            lambda alias: list(ColumnValues(self.query.clone(), alias)), self.aliases
        )
        return chain.from_iterable(values.values())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {', '.join(self.aliases)}: {self.query}>"


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
        """The alias the target rows are read from: ``using``, else the router's
        (for a target in several databases, the partition in effect; a
        resolver places each row instead: ``target_ids_by_alias()``)."""
        return self.using or router.db_for_read(self.remote_field.model)

    def target_alias_of_rows_in(self, alias: str) -> str | None:
        """The one alias the targets of this field's rows in ``alias`` live
        in: ``alias`` itself for a target beside each row (``SameAsSource``),
        None for one a resolver places by key (a natural key then needs a
        partition), else ``target_alias``."""
        resolver = self.target_resolver
        if resolver is None:
            return self.target_alias
        return alias if resolver.is_local else None

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

    def describe(self) -> str:
        return f"{self.model._meta.object_name}.{self.name}"

    # Targets a resolver places -------------------------------------------------

    @property
    def target_resolver(self) -> Resolver | None:
        """The resolver that places the target's rows, unless ``using`` names
        their alias or the target is placed otherwise."""
        if self.using:
            return None
        placement = placement_for_model(self.remote_field.model)
        return placement if isinstance(placement, Resolver) else None

    @property
    def target_is_local(self) -> bool:
        """Whether each row's target sits in that row's own database
        (``SameAsSource``): target ids then repeat from one to the next."""
        resolver = self.target_resolver
        return resolver is not None and resolver.is_local

    def referencing_aliases_for(self, target_alias: str) -> tuple[str, ...]:
        """The aliases whose rows may refer to target rows in ``target_alias``."""
        if self.target_is_local:
            return tuple(a for a in self.referencing_aliases if a == target_alias)
        return self.referencing_aliases

    def referencing_alias_of(self, instance: models.Model) -> str:
        """The alias ``instance`` of this field's model lives in or goes to."""
        return instance._state.db or router.db_for_write(self.model, instance=instance)

    def target_ids_by_alias(
        self, ids_by_referencing_alias: IdsByReferencingAlias
    ) -> dict[str, list[Any]]:
        """``{alias: target values}``: where the targets of these values live,
        given the values rows in each referencing alias hold (None where
        it does not matter). Without a resolver, the one target alias; with
        one, its answer for the whole batch, checked."""
        to_python = self.target_field.to_python
        asked = {
            alias: [value for value in map(to_python, values) if value is not None]
            for alias, values in ids_by_referencing_alias.items()
        }
        resolver = self.target_resolver
        if resolver is None or not resolver.is_local:
            ids = list(dict.fromkeys(chain.from_iterable(asked.values())))
            if resolver is None:
                return {self.target_alias: ids} if ids else {}
            asked = {None: ids}
        elif None in asked:  # The rows' alias: the partition in effect.
            unplaced = asked.pop(None)
            rows_alias = self.referencing_alias
            asked[rows_alias] = [*asked.get(rows_alias, []), *unplaced]
        try:
            return placed_ids(resolver, self.remote_field.model, asked)
        except PartitionError as error:
            raise PartitionError(f"{self.describe()}: {error}") from error

    def target_ids_of(self, instances: Iterable[models.Model]) -> dict[str, list[Any]]:
        """``{alias: target values}`` of the targets ``instances`` refer to."""
        ids_by_referencing_alias: defaultdict[str | None, list[Any]] = defaultdict(list)
        is_local = self.target_is_local
        for instance in instances:
            value = getattr(instance, self.attname)
            if value is not None:
                alias = self.referencing_alias_of(instance) if is_local else None
                ids_by_referencing_alias[alias].append(value)
        return self.target_ids_by_alias(ids_by_referencing_alias)

    def reference_key(self) -> Callable[[models.Model], Any]:
        """What identifies a referencing row's target among targets read
        from several databases: its value, and its alias where ids repeat."""
        value_of = attrgetter(self.attname)
        if not self.target_is_local:
            return value_of
        alias_of = self.referencing_alias_of
        return lambda instance: (alias_of(instance), value_of(instance))

    def target_key(self) -> Callable[[models.Model], Any]:
        """The ``reference_key()`` of the rows that refer to a target."""
        value_of = attrgetter(self.target_field.attname)
        if not self.target_is_local:
            return value_of
        return lambda target: (target._state.db, value_of(target))

    def read_targets(
        self, ids_by_alias: Mapping[str, list[Any]], queryset: models.QuerySet[Any]
    ) -> list[models.Model]:
        """The rows of ``queryset`` with these target values, one query per
        alias, at once. A value found in two aliases is an error."""
        target_field = self.target_field
        lookup = f"{target_field.attname}__in"

        def read(alias: str) -> list[models.Model]:
            rows = queryset.using(alias).filter(
                **{lookup: IdSet(ids_by_alias[alias], target_field)}
            )
            rows.query.clear_ordering()  # One target per value: no order needed.
            return list(rows)

        rows = list(chain.from_iterable(run_per_alias(read, ids_by_alias).values()))
        if len(ids_by_alias) > 1 and len(set(map(self.target_key(), rows))) < len(rows):
            self.refuse_duplicates(rows)
        return rows

    def target_values(self, query: Query) -> Iterable[Any]:
        """The one column ``query`` (of the target) selects, read each time
        it is iterated: in the target's alias, in every alias of the
        resolver that places it by id (one query each, at once), or, for a
        target beside each referencing row, in the database of the query
        that holds them."""
        resolver = self.target_resolver
        if resolver is None:
            return ColumnValues(query, self.target_alias)
        if resolver.is_local:
            return BesideTheQuery(lambda alias: ColumnValues(query.clone(), alias))
        return ColumnValuesEverywhere(query, resolver.aliases)

    def refuse_duplicates(self, rows: list[models.Model]) -> None:
        aliases_by_key: defaultdict[Any, list[str]] = defaultdict(list)
        target_key = self.target_key()
        for row in rows:
            aliases_by_key[target_key(row)].append(str(row._state.db))
        key, aliases = next((k, a) for k, a in aliases_by_key.items() if len(a) > 1)
        target: Any = self.remote_field.model
        raise target.MultipleObjectsReturned(
            f"{self.describe()}: {target._meta.object_name} with "
            f"{self.target_field.attname} {key!r} exists in {names(aliases)}; "
            f"{self.target_resolver!r} needs ids unique across its databases."
        )

    # Integrity -----------------------------------------------------------------

    def missing_target_ids(
        self, values: Iterable[Any], referencing_alias: str | None = None
    ) -> list[Any]:
        """The values among ``values`` that no target row has, in one query
        per database that holds some (``referencing_alias``: where the rows
        holding them live, for a target in the referencing row's database).

        Inside a transaction on the target's database, the rows found stay
        locked until it ends (``crossfk.locking.found_and_locked``).
        """
        ids_by_alias = self.target_ids_by_alias({referencing_alias: values})
        return sorted(self.where_missing(ids_by_alias), key=str)

    def where_missing(
        self, ids_by_alias: Mapping[str, list[Any]]
    ) -> dict[Any, tuple[str, ...]]:
        """``{value: the aliases it was looked for in}`` for each value no
        target row has, one query per alias."""
        found = self.found_target_ids(ids_by_alias)
        looked_in: defaultdict[Any, list[str]] = defaultdict(list)
        for alias, ids in ids_by_alias.items():
            for value in ids:
                if value not in found:
                    looked_in[value].append(alias)
        return {value: tuple(aliases) for value, aliases in looked_in.items()}

    def found_target_ids(
        self, ids_by_alias: Mapping[str, list[Any]], *, lock: bool = True
    ) -> set[Any]:
        """The values that a target row has, one query per alias, at once;
        the rows locked as ``crossfk.locking.found_and_locked`` says, unless
        ``lock=False``."""
        target_field = self.target_field
        attname = target_field.attname
        manager = self.remote_field.model._base_manager

        def found_in(alias: str) -> list[Any]:
            found_ids = (
                manager.using(alias)
                .filter(**{f"{attname}__in": IdSet(ids_by_alias[alias], target_field)})
                .values_list(attname, flat=True)
            )
            return found_and_locked(found_ids, alias) if lock else list(found_ids)

        return set(chain.from_iterable(run_per_alias(found_in, ids_by_alias).values()))

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
        ids_by_alias = self.target_ids_by_alias({using: values})
        doing = f"Writing {self.describe()}"
        blocks = dict.fromkeys(
            checked_at_commit(self, using, doing, alias) for alias in ids_by_alias
        )
        missing = self.where_missing(ids_by_alias)
        declare(using, writes=True)
        for block in blocks:
            if block is not None:
                block.check_at_commit(self, using, values)
        if not missing:
            return
        target = self.remote_field.model._meta.object_name
        by_aliases: dict[tuple[str, ...], list[Any]] = {}
        for value in sorted(missing, key=str):
            by_aliases.setdefault(missing[value], []).append(value)
        where = "; ".join(
            f"{shown_ids(ids)} in {in_databases(aliases)}"
            for aliases, ids in by_aliases.items()
        )
        raise CrossDBIntegrityError(
            f"{self.describe()}: no {target} with {self.target_field.attname} "
            f"{where}. Save the {target} first, or declare the field with "
            f"enforce=False to allow dangling ids."
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
        referencing_alias = None
        if model_instance is not None and self.target_is_local:
            referencing_alias = self.referencing_alias_of(model_instance)
        ids_by_alias = self.target_ids_by_alias({referencing_alias: [value]})
        target_field_name = self.remote_field.field_name
        queryset = (
            self.remote_field.model._base_manager.filter(
                **{str(target_field_name): value}
            )
        ).complex_filter(self.get_limit_choices_to())
        found = run_per_alias(
            lambda alias: queryset.using(alias).exists(), ids_by_alias
        )
        if not any(found.values()):
            aliases = list(ids_by_alias)
            where = "database %(database)r"
            if len(aliases) > 1:
                where = "databases %(database)s"
            raise exceptions.ValidationError(
                f"%(model)s instance with %(field)s %(value)r does not exist in "
                f"{where}.",
                code="invalid",
                params={
                    "model": self.remote_field.model._meta.verbose_name,
                    "pk": value,
                    "field": target_field_name,
                    "value": value,
                    "database": aliases[0] if len(aliases) == 1 else names(aliases),
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
        using = kwargs.pop("using", None)
        if using is None and self.target_resolver is not None:
            # No one database to choose from: the form field asks the
            # resolver where a chosen value lives.
            kwargs = {"form_class": ResolvedModelChoiceField, **kwargs}
            return super().formfield(cross_field=self, **kwargs)
        return super().formfield(using=using or self.target_alias, **kwargs)

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
            *self._check_target_placement(),
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
        if on_delete in (models.SET_NULL, DEFERRED_SET_NULL) and not self.null:
            return [
                checks.Error(
                    f"{self.describe()} has on_delete={on_delete.__name__} but "
                    f"is not null=True.",
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

    def _check_target_placement(self) -> list[checks.CheckMessage]:
        """A target in several databases needs a resolver to find its rows."""
        if isinstance(self.remote_field.model, str) or self.using is not None:
            return []
        target = self.remote_field.model._meta.label
        placement = placement_for_model(self.remote_field.model)
        if isinstance(placement, tuple) and len(placement) > 1:
            return [
                checks.Error(
                    f"{self.describe()} refers to {target}, which lives in "
                    f"{len(placement)} databases ({names(placement)}) placed by "
                    f"a list: nothing says which one holds a given row.",
                    hint=f"Place {target} with a crossfk.resolvers resolver: "
                    f"SameAsSource(...) if each row's target sits in that "
                    f"row's own database, Hash, Directory or Scatter if its "
                    f"ids are unique across them; or give the field using=.",
                    obj=self,
                    id="crossfk.E011",
                )
            ]
        if not isinstance(placement, Resolver):
            return []
        target_field = self.target_field
        if placement.places_by_primary_key and not target_field.primary_key:
            return [
                checks.Error(
                    f"{self.describe()} refers to {target} by "
                    f"{target_field.name}, but {placement!r} places {target} "
                    f"rows by primary key: it would be asked where "
                    f"{target_field.name} values live.",
                    hint="Refer to the primary key (drop to_field), or place "
                    f"{target} with Scatter() or a resolver of your own.",
                    obj=self,
                    id="crossfk.E013",
                )
            ]
        if not placement.is_local:
            return []
        outside = [a for a in self.referencing_aliases if a not in placement.aliases]
        if not outside:
            return []
        return [
            checks.Error(
                f"{self.describe()} refers to {target}, placed by "
                f"{placement!r}, which finds each row's target in that row's "
                f"own database; but {self.model._meta.label} also lives in "
                f"{names(outside)}, where {target} does not.",
                hint=f"Place {target} in {names(outside)} too, or use a "
                f"resolver that places it by id.",
                obj=self,
                id="crossfk.E012",
            )
        ]
