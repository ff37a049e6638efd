"""Resolvers: which database holds which rows of a model placed in several.

A model placed in a list of aliases (a database per tenant) is used one
alias at a time, named by ``using()`` or ``crossfk.partition()``. A model
whose rows are spread by key (shards) is placed by a ``Resolver`` instead:
given a batch of ids, it says where each lives, so that relations to it
cost one query per database holding some of them, never one per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import Model


class Resolver:
    """Where the rows of a model placed in several aliases live.

    Subclasses answer ``aliases_for()`` (called once per batch of ids, never
    per row) and ``alias_for_new()`` (where ``save()`` puts a new row).
    """

    def __init__(self, aliases: Sequence[str]) -> None:
        self.aliases = tuple(dict.fromkeys(aliases))

    def aliases_for(self, ids: Iterable[Any]) -> dict[str, list[Any]]:
        """``{alias: ids}`` for the rows with these ids."""
        raise NotImplementedError(
            f"{type(self).__name__} must define aliases_for(ids)."
        )

    def alias_for_new(self, instance: Model) -> str:
        """The alias a new row is saved to."""
        raise NotImplementedError(
            f"{type(self).__name__} must define alias_for_new(instance)."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.aliases)!r})"
