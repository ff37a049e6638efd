"""Referential actions across databases.

Django's ``Collector`` gathers what a delete must touch, then deletes it, all
in one database. A CrossDBForeignKey hands the Collector a ``CrossDBOnDelete``
instead of the user's action. When the Collector reaches the relation, it
re-aims the action at the referencing rows' own database, through a second
Collector there, and takes over the first Collector's ``delete()`` so that
both databases are written inside ``crossfk.atomic``, referencing side
committed first. ``PROTECT`` and ``RESTRICT`` raise before any database is
written. Each batch of targets costs one query per referencing database.
"""

from __future__ import annotations

from collections import Counter

from django.db.models import CASCADE, PROTECT, RESTRICT
from django.db.models.deletion import Collector

from crossfk.transaction import atomic


class CrossDBOnDelete:
    """The ``on_delete`` Django's Collector sees for a CrossDBForeignKey."""

    # Keep the Collector from evaluating sub_objs: it would read them from
    # the target's database, which does not hold them.
    lazy_sub_objs = True

    def __init__(self, action) -> None:
        self.action = action

    def __call__(self, collector, field, sub_objs, using) -> None:
        CrossDeletion.attach(collector).apply(self.action, field, sub_objs)


class CrossDeletion:
    """The other databases' share of one Collector's work."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.source_collectors: dict[str, Collector] = {}
        self.delete_targets = collector.delete
        collector.delete = self.delete

    @classmethod
    def attach(cls, collector: Collector) -> CrossDeletion:
        plan = getattr(collector, "crossfk_deletion", None)
        if plan is None:
            plan = collector.crossfk_deletion = cls(collector)
        return plan

    def source_collector(self, alias: str) -> Collector:
        if alias not in self.source_collectors:
            self.source_collectors[alias] = Collector(
                using=alias, origin=self.collector.origin
            )
        return self.source_collectors[alias]

    def apply(self, action, field, sub_objs) -> None:
        alias = field.source_alias
        # The admin's NestedObjects asks for select_related() on the relation,
        # a join the referencing database cannot make.
        sub_objs = sub_objs.using(alias).select_related(None)
        collector = self.source_collector(alias)
        if action is CASCADE:
            collector.collect(
                sub_objs,
                source=field.remote_field.model,
                source_attr=field.name,
                nullable=field.null,
            )
            # Rows this delete removes anyway no longer restrict it, as in
            # Django when a cascade reaches a RESTRICT-ed row by another path.
            for model, instances in collector.data.items():
                self.collector.clear_restricted_objects_from_set(model, instances)
        elif action is PROTECT:
            protected = list(sub_objs)
            if protected:
                PROTECT(self.collector, field, protected, alias)
        elif action is RESTRICT:
            # Django's own bookkeeping: the top-level collect() raises
            # RestrictedError, so the admin lists the rows that block.
            cascaded = set(collector.data.get(field.model, ()))
            restricted = [obj for obj in sub_objs if obj not in cascaded]
            if restricted:
                RESTRICT(self.collector, field, restricted, alias)
        elif getattr(action, "lazy_sub_objs", False) or sub_objs:
            # As Django does: SET_DEFAULT and SET(callable) only compute their
            # value when some row refers to the deleted targets.
            action(collector, field, sub_objs, alias)

    def delete(self) -> tuple[int, dict[str, int]]:
        aliases = dict.fromkeys([self.collector.using, *self.source_collectors])
        deleted_counter = Counter()
        # Targets go first, so that their pre_delete receivers still see the
        # referencing rows, as with a real ForeignKey. The blocks commit in
        # reverse order: the referencing databases first, so a crash between
        # two commits leaves unreferenced targets, never a dangling reference.
        with atomic(*aliases):
            deleted_counter.update(self.delete_targets()[1])
            for collector in self.source_collectors.values():
                deleted_counter.update(collector.delete()[1])
        return sum(deleted_counter.values()), dict(deleted_counter)
