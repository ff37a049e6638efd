"""Where each model lives, and which of its databases a query uses.

A model is placed in one alias, in a list of aliases (a database per
tenant), or by a ``Resolver`` (rows spread by key): by its
``MultiDBManager``, else by ``CROSSFK_PARTITIONS``, else in "default".

A model placed in several aliases has no one database for a query that
names none. Django's ``using()`` names it per query; ``partition(alias)``
names it for a block of code or a function. It is held in a context
variable, so each thread and each asyncio task sees the partition of the
code that started it, never another request's. With neither, the database
its instance was read from; else the query raises ``PartitionError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ContextDecorator
from contextvars import ContextVar, Token
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, models
from django.db.models.signals import class_prepared
from django.utils.connection import ConnectionDoesNotExist

from crossfk.exceptions import PartitionError
from crossfk.resolvers import Resolver


@dataclass(frozen=True)
class Active:
    alias: str
    locked: bool


_active: ContextVar[Active | None] = ContextVar("crossfk_partition", default=None)


def active_partition() -> str | None:
    """The alias of the innermost ``partition()`` block in effect, if any."""
    active = _active.get()
    return active.alias if active is not None else None


class partition(ContextDecorator):
    """Use ``alias`` for models placed in several databases, within the block.

    Models placed in one database keep it, and ``using()`` still wins. With
    ``lock=True`` a nested ``partition()`` of another alias raises
    ``PartitionError``: code that serves one tenant cannot switch to
    another's database by mistake.
    """

    def __init__(self, alias: str, *, lock: bool = False) -> None:
        if alias not in settings.DATABASES:
            raise ConnectionDoesNotExist(
                f"crossfk.partition({alias!r}): {alias!r} is not a key of "
                f"DATABASES ({', '.join(map(repr, settings.DATABASES))})."
            )
        self.alias, self.lock = alias, lock
        self.tokens: list[Token[Active | None]] = []

    def _recreate_cm(self) -> partition:
        # A decorated function gets a block of its own at each call, so that
        # calls in several threads or recursive ones keep their own tokens.
        return type(self)(self.alias, lock=self.lock)

    def __enter__(self) -> str:
        outer = _active.get()
        if outer is not None and outer.locked and outer.alias != self.alias:
            raise PartitionError(
                f"crossfk.partition({self.alias!r}) inside "
                f"crossfk.partition({outer.alias!r}, lock=True): the locked "
                f"block does not allow another database."
            )
        locked = self.lock or (outer is not None and outer.locked)
        self.tokens.append(_active.set(Active(self.alias, locked)))
        return self.alias

    def __exit__(self, *exc_info: object) -> None:
        _active.reset(self.tokens.pop())


# Where a model lives: one alias, several, or a resolver over several.
Placement = str | tuple[str, ...] | Resolver


def as_placement(value: str | Sequence[str] | Resolver) -> Placement:
    """A placement as given in a manager or the settings, normalised."""
    if isinstance(value, (str, Resolver)):
        return value
    return tuple(dict.fromkeys(value))


class Placed:
    """A manager that places its model: ``crossfk.MultiDBManager``."""

    placement: str | Sequence[str] | Resolver | None = None


def declared_placement(model: type[models.Model]) -> Placement | None:
    """The placement a model's ``MultiDBManager`` declares, if it has one."""
    for manager in model._meta.managers:
        if isinstance(manager, Placed) and manager.placement is not None:
            return as_placement(manager.placement)
    return None


def placement_for_label(app_label: str, model_name: str | None = None) -> Placement:
    """The placement ``CROSSFK_PARTITIONS`` gives a model (``"app.Model"``) or app."""
    # Read at use time so that override_settings() applies.
    partitions = getattr(settings, "CROSSFK_PARTITIONS", {})
    if model_name is not None:
        for label, value in partitions.items():
            if "." in label and label.lower() == f"{app_label}.{model_name}".lower():
                return as_placement(value)
    return as_placement(partitions.get(app_label, DEFAULT_DB_ALIAS))


def placement_for_model(model: type[models.Model]) -> Placement:
    """Where a model lives: its manager, else the settings, else default.

    Asked for every query and every row a relation reaches: kept until a
    setting it depends on changes (``override_settings()``).
    """
    placement = _placements.get(model)
    if placement is not None:
        return placement
    opts = model._meta
    owner = opts.auto_created
    if isinstance(owner, type):  # A many-to-many through table lives with it.
        placement = placement_for_model(owner)
    else:
        placement = declared_placement(model)
        if placement is None:
            placement = placement_for_label(opts.app_label, opts.model_name)
        if isinstance(placement, Resolver) and placement.placed_model is None:
            placement.placed_model = model  # what SameAsSource() needs
    _placements[model] = placement
    return placement


_placements: dict[type[models.Model], Placement] = {}


def aliases_of(placement: Placement) -> tuple[str, ...]:
    if isinstance(placement, str):
        return (placement,)
    if isinstance(placement, Resolver):
        return placement.aliases
    return placement


def model_aliases(model: type[models.Model]) -> tuple[str, ...]:
    """Every alias a model lives in, in the order it was placed."""
    return aliases_of(placement_for_model(model))


@cache
def pinned_aliases() -> frozenset[str]:
    """The aliases some model is placed in alone: kept, as placements are,
    and until another model class is made."""
    placements = map(placement_for_model, apps.get_models(include_auto_created=True))
    return frozenset(p for p in placements if isinstance(p, str))


def forget_placements(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: placements follow the settings."""
    if setting in ("CROSSFK_PARTITIONS", "DATABASES"):
        _placements.clear()
        pinned_aliases.cache_clear()


def forget_pinned_aliases(**kwargs: Any) -> None:
    """``class_prepared`` receiver: a new model may pin another alias."""
    pinned_aliases.cache_clear()


setting_changed.connect(forget_placements)
class_prepared.connect(forget_pinned_aliases)


def working_aliases() -> list[str]:
    """The databases a block that names none works in, in DATABASES order:
    those models are pinned to, and the ``partition()`` in effect.

    Not every alias: with a database per tenant, a block (a request) would
    connect to every tenant's.
    """
    covered = pinned_aliases() | {active_partition()}
    return [alias for alias in settings.DATABASES if alias in covered]


def partition_for_model(
    model: type[models.Model], instance: models.Model | None = None
) -> str:
    """The alias a query or write of ``model`` uses, when it names none.

    A model placed in several aliases takes the database ``instance`` (the
    row itself, or a row related to it) came from, as Django's default
    routing does; for a new row of a model a resolver places, the
    resolver's choice, if it makes one; else the ``partition()`` in effect.
    """
    placement = placement_for_model(model)
    if isinstance(placement, str):
        return placement
    aliases = aliases_of(placement)
    if instance is not None and instance._state.db in aliases:
        return instance._state.db
    is_new = isinstance(instance, model) and instance._state.adding
    if is_new and isinstance(placement, Resolver):
        # Before the partition in effect: a row saved anywhere else than
        # where its resolver places it could not be found again.
        alias = resolved_alias_for_new(model, placement, instance)
        if alias is not None:
            return alias
    active = active_partition()
    if active is not None:
        if active not in aliases:
            raise PartitionError(
                f"{model._meta.label} is not placed in {active!r}, the "
                f"crossfk.partition() in effect; it lives in {names(aliases)}."
            )
        return active
    raise PartitionError(
        f"{model._meta.label} lives in {len(aliases)} databases "
        f"({names(aliases)}): name one with using(alias), or work inside "
        f"crossfk.partition(alias)."
    )


def resolved_alias_for_new(
    model: type[models.Model], resolver: Resolver, instance: Any
) -> str | None:
    alias = resolver.alias_for_new(instance)
    if alias is not None and alias not in resolver.aliases:
        raise PartitionError(
            f"{resolver!r}.alias_for_new() placed a new {model._meta.label} "
            f"in {alias!r}, which is not one of its aliases "
            f"({names(resolver.aliases)})."
        )
    return alias


def sole_alias(aliases: Sequence[str]) -> str | None:
    """The one alias of ``aliases``; None for several: a query that names
    none reads the partition in effect, else every one of them."""
    return aliases[0] if len(aliases) == 1 else None


def names(aliases: Sequence[str]) -> str:
    return ", ".join(map(repr, aliases))


def missing_from_databases(value: str | Sequence[str] | Resolver) -> str | None:
    """What a placement gets wrong by naming aliases not in DATABASES, if so:
    the end of a check's message."""
    unknown = [
        a for a in aliases_of(as_placement(value)) if a not in settings.DATABASES
    ]
    if not unknown:
        return None
    if isinstance(value, str):
        return "which is not a key of DATABASES"
    if len(unknown) == 1:
        return f"and {unknown[0]!r} is not a key of DATABASES"
    return f"and {names(unknown)} are not keys of DATABASES"
