"""Resolvers: which database holds which rows of a model placed in several.

A model placed in a list of aliases (a database per tenant) is used one
alias at a time, named by ``using()`` or ``crossfk.partition()``. A model
whose rows are spread by key (shards) is placed by a ``Resolver`` instead:
given a batch of ids, it says where each lives, so that relations to it
cost one query per database holding some of them, never one per row.

The built-in ones:

- ``Hash(aliases)``: a stable hash of the key picks the alias;
- ``Directory(model[, aliases])``: a table in one database maps key to alias;
- ``SameAsSource([aliases])``: a row sits in the database of the rows that
  refer to it (ids repeat from one database to the next);
- ``Scatter([aliases])``: any alias may hold any id; every one is asked.

Made without aliases, ``SameAsSource()`` lives in the databases of the
models that refer to its model, ``Directory()`` and ``Scatter()`` in every
alias of ``DATABASES``.

Every resolver but ``SameAsSource`` places a row by its id alone, so the
ids must be unique across its aliases: UUIDs, char keys, or integers from
one shared sequence. What a resolver answers is checked by
``placed_ids()``, before any query reads or writes a row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from hashlib import blake2b
from itertools import chain
from typing import Any
from uuid import UUID

from django.apps import apps
from django.conf import settings
from django.db import models

from crossfk.exceptions import PartitionError
from crossfk.idsets import IdSet
from crossfk.relations import cross_foreign_keys

# What a relation asks of a resolver: the ids that rows in each of the
# referencing model's aliases hold (None where that alias does not matter).
IdsByReferencingAlias = Mapping[str | None, Iterable[Any]]


class Resolver:
    """Where the rows of a model placed in several aliases live.

    Subclasses answer ``aliases_for()`` (called once per batch of ids, never
    per row) and ``alias_for_new()`` (where ``save()`` puts a new row that
    names no database; None leaves it to ``using()`` or the
    ``crossfk.partition()`` in effect).
    """

    #: Whether a row is found by the alias of the row that refers to it as
    #: well as by its id (ids then repeat from one alias to the next).
    is_local = False
    #: Whether ``aliases_for()`` knows rows by primary key only: a relation
    #: with another ``to_field`` cannot ask it (check ``crossfk.E013``).
    places_by_primary_key = False

    # The model the resolver places, once crossfk.placement has met it.
    placed_model: type[models.Model] | None = None

    def __init__(self, aliases: Sequence[str] | None = None) -> None:
        if isinstance(aliases, str):
            raise TypeError(
                f"{type(self).__name__}() takes a list of aliases, not the "
                f"string {aliases!r}: place a model in one database with "
                f"MultiDBManager({aliases!r})."
            )
        self.given_aliases = None if aliases is None else tuple(dict.fromkeys(aliases))
        if self.given_aliases == ():
            raise ValueError(f"{type(self).__name__}() needs at least one alias.")

    @property
    def aliases(self) -> tuple[str, ...]:
        """The databases the model lives in: those given, else the
        resolver's default (``default_aliases()``)."""
        if self.given_aliases is not None:
            return self.given_aliases
        return self.default_aliases()

    def default_aliases(self) -> tuple[str, ...]:
        """The databases of a resolver made without aliases: every alias of
        ``DATABASES`` (read at use time)."""
        return tuple(settings.DATABASES)

    def aliases_for(self, ids: Iterable[Any]) -> dict[str, list[Any]]:
        """``{alias: ids}`` for the rows with these ids: the values relations
        hold, the primary key unless a relation names a ``to_field``."""
        raise NotImplementedError(
            f"{type(self).__name__} must define aliases_for(ids)."
        )

    def alias_for_new(self, instance: models.Model) -> str | None:
        """The alias a new row is saved to; None for the partition in effect."""
        raise NotImplementedError(
            f"{type(self).__name__} must define alias_for_new(instance)."
        )

    def aliases_for_references(
        self, ids_by_referencing_alias: IdsByReferencingAlias
    ) -> dict[str, list[Any]]:
        """``{alias: ids}`` for the targets of references, given the ids the
        rows in each referencing alias hold. By id alone, in one call of
        ``aliases_for()``, unless the resolver ``is_local``."""
        ids = dict.fromkeys(chain.from_iterable(ids_by_referencing_alias.values()))
        return self.aliases_for(list(ids))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.aliases)!r})"


class Hash(Resolver):
    """Place each row by a stable hash of its key.

    The alias is ``aliases[h % len(aliases)]``, where ``h`` is the first 8
    bytes, big-endian, of the BLAKE2b digest of ``str(key)`` in UTF-8: the
    canonical hyphenated form of a UUID, the decimal digits of an integer,
    a char key itself. Unlike Python's ``hash()`` it is the same in every
    process and on every Python version. Changing the list of aliases moves
    most rows: ``crossfk`` does not move them for you.

    For UUID or char keys, or integers from a sequence shared by every
    alias (per-database sequences would give two rows the same id). A new
    row is placed by its primary key, which must be set before ``save()``:
    a UUID field with ``default=uuid.uuid4`` is.
    """

    places_by_primary_key = True  # A new row is placed by its own.

    def __init__(self, aliases: Sequence[str]) -> None:
        super().__init__(aliases)  # A hash needs its list: no default.

    def alias_of(self, key: Any) -> str:
        """The alias of the row whose key is ``key``."""
        if isinstance(key, bool) or not isinstance(key, (int, str, UUID)):
            raise TypeError(
                f"{self!r} hashes integer, string and UUID keys, not "
                f"{type(key).__name__} {key!r}."
            )
        digest = blake2b(str(key).encode(), digest_size=8).digest()
        return self.aliases[int.from_bytes(digest, "big") % len(self.aliases)]

    def aliases_for(self, ids: Iterable[Any]) -> dict[str, list[Any]]:
        ids_by_alias: dict[str, list[Any]] = {}
        for key in dict.fromkeys(ids):
            ids_by_alias.setdefault(self.alias_of(key), []).append(key)
        return ids_by_alias

    def alias_for_new(self, instance: models.Model) -> str:
        opts = instance._meta
        key = opts.pk.to_python(instance.pk)
        if key is None:
            raise PartitionError(
                f"{self!r} places a new {opts.label} by its primary key, which "
                f"is not set: give {opts.label}.{opts.pk.name} a default "
                f"(uuid.uuid4) or set it before save()."
            )
        return self.alias_of(key)


class Directory(Resolver):
    """Place each row by a lookup table: a ``model`` in one database whose
    rows map a key (field ``key``) to an alias (field ``alias``).

    ``aliases_for()`` reads the table once per batch; an id it has no row
    for is an error (``PartitionError``). crossfk never writes the table.
    A new row goes where ``place_new(instance)`` says, if given; else its
    primary key must have a row in the table already.
    """

    def __init__(
        self,
        model: type[models.Model] | str,
        aliases: Sequence[str] | None = None,
        *,
        key: str = "key",
        alias: str = "alias",
        place_new: Callable[[models.Model], str] | None = None,
    ) -> None:
        super().__init__(aliases)
        self.model = model
        self.key_name, self.alias_name = key, alias
        self.place_new = place_new
        # Without place_new, a new row is found in the table by its primary
        # key: the table's keys are primary keys.
        self.places_by_primary_key = place_new is None

    @property
    def directory_model(self) -> type[models.Model]:
        """The table's model; a label given is looked up on first use."""
        if isinstance(self.model, str):
            self.model = apps.get_model(self.model)
        return self.model

    def aliases_for(self, ids: Iterable[Any]) -> dict[str, list[Any]]:
        model = self.directory_model
        key_field: Any = model._meta.get_field(self.key_name)
        wanted = {key_field.to_python(key): key for key in ids}
        if not wanted:
            return {}
        rows = model._base_manager.filter(
            **{f"{self.key_name}__in": IdSet(wanted, key_field)}
        ).values_list(self.key_name, self.alias_name)
        ids_by_alias: dict[str, list[Any]] = {}
        for key, alias in rows:
            ids_by_alias.setdefault(alias, []).append(wanted[key])
        placed = set(chain.from_iterable(ids_by_alias.values()))
        unplaced = [key for key in wanted.values() if key not in placed]
        if unplaced:
            raise PartitionError(
                f"{self!r} has no row for {self.key_name} "
                f"{shown_ids(unplaced)}: add one "
                f"({self.key_name}, {self.alias_name}) to "
                f"{model._meta.label} before such a row is saved or referred to."
            )
        return ids_by_alias

    def alias_for_new(self, instance: models.Model) -> str:
        if self.place_new is not None:
            return self.place_new(instance)
        if instance.pk is None:
            raise PartitionError(
                f"{self!r} places a new {instance._meta.label} by its primary "
                f"key, which is not set: set it and add its row to the "
                f"directory before save(), or give Directory(place_new=...)."
            )
        ((alias, _),) = self.aliases_for([instance.pk]).items()
        return alias

    def __repr__(self) -> str:
        model = self.model if isinstance(self.model, str) else self.model._meta.label
        return f"Directory({model!r}, {list(self.aliases)!r})"


class SameAsSource(Resolver):
    """A row sits in the database of the rows that refer to it.

    For data local to each database (a tenant's, a shard's): ids repeat
    from one alias to the next, so a row is found by the alias of the row
    referring to it, never by its id alone. The model lives (and is
    migrated) in ``aliases``, which must include every alias of the models
    that refer to it (check ``crossfk.E012``). A new row goes in the alias
    ``using()`` or ``crossfk.partition()`` names.
    """

    is_local = True

    def default_aliases(self) -> tuple[str, ...]:
        """Made without aliases: those of the models that refer to it."""
        model = self.placed_model
        if model is None:
            return ()
        referring = [
            field.referencing_aliases
            for field in cross_foreign_keys()
            if field.remote_field.model is model
        ]
        return tuple(dict.fromkeys(chain.from_iterable(referring)))

    def aliases_for(self, ids: Iterable[Any]) -> dict[str, list[Any]]:
        raise PartitionError(
            f"{self!r} places a row by the database of the row that refers to "
            f"it, and was given ids alone: read it with using(alias) or "
            f"inside crossfk.partition(alias)."
        )

    def aliases_for_references(
        self, ids_by_referencing_alias: IdsByReferencingAlias
    ) -> dict[str, list[Any]]:
        if None in ids_by_referencing_alias:
            return self.aliases_for(ids_by_referencing_alias[None])
        return {
            alias: list(dict.fromkeys(ids))
            for alias, ids in ids_by_referencing_alias.items()
            if alias is not None
        }

    def alias_for_new(self, instance: models.Model) -> None:
        return None  # The rows referring to it are not known yet.


class Scatter(Resolver):
    """Any alias may hold any row: every one is asked for every id (one
    query each). For ids unique across the aliases; a new row goes in the
    alias ``using()`` or ``crossfk.partition()`` names."""

    def aliases_for(self, ids: Iterable[Any]) -> dict[str, list[Any]]:
        ids = list(dict.fromkeys(ids))
        return {alias: ids for alias in self.aliases} if ids else {}

    def alias_for_new(self, instance: models.Model) -> None:
        return None


def placed_ids(
    resolver: Resolver,
    model: type[models.Model],
    ids_by_referencing_alias: IdsByReferencingAlias,
) -> dict[str, list[Any]]:
    """``{alias: ids}`` of ``model``'s rows with these ids, as ``resolver``
    places them, checked: every alias is one of its aliases, every id is
    placed. Raises ``PartitionError`` naming what is wrong."""
    asked = {alias: list(ids) for alias, ids in ids_by_referencing_alias.items() if ids}
    if not asked:
        return {}
    ids_by_alias = resolver.aliases_for_references(asked)
    label = model._meta.label
    for alias, ids in ids_by_alias.items():
        if alias not in resolver.aliases:
            unknown = "" if alias in settings.DATABASES else ", nor a key of DATABASES"
            raise PartitionError(
                f"{resolver!r} placed {label} {shown_ids(ids)} in {alias!r}, "
                f"which is not one of its aliases{unknown}."
            )
    placed = set(chain.from_iterable(ids_by_alias.values()))
    unplaced = [i for i in dict.fromkeys(chain(*asked.values())) if i not in placed]
    if unplaced:
        raise PartitionError(
            f"{resolver!r} placed no alias for {label} {shown_ids(unplaced)}."
        )
    return ids_by_alias


def in_databases(aliases: Sequence[str]) -> str:
    """``database 'a'``, or ``databases 'a', 'b'``, for a message."""
    plural = "s" if len(aliases) > 1 else ""
    return f"database{plural} {', '.join(map(repr, aliases))}"


def shown_ids(ids: Sequence[Any]) -> str:
    """Up to ten ids, for a message."""
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    return ", ".join(map(repr, ids[:10])) + more
