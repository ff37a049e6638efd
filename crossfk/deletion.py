"""Referential actions across databases.

Django's ``Collector`` gathers what a delete must touch, then deletes it, all
in one database. A CrossDBForeignKey hands the Collector a ``CrossDBOnDelete``
instead of the user's action. When the Collector reaches the relation, it
re-aims the action at the referencing rows' own database, through a second
Collector there, and takes over the first Collector's ``delete()`` so that
both databases are written inside ``crossfk.atomic``, referencing side
committed first (on PostgreSQL, after locking the targets and reading their
references again). ``PROTECT`` and ``RESTRICT`` raise before any database is
written. Each batch of targets costs one query per referencing database.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from django.db import connections
from django.db.models import CASCADE, PROTECT, RESTRICT, ProtectedError, RestrictedError
from django.db.models.deletion import Collector

from crossfk.idsets import IdSet
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
        self.applied_actions = []
        self.delete_targets = collector.delete
        collector.delete = self.delete

    @classmethod
    def attach(cls, collector: Collector) -> CrossDeletion:
        plan = getattr(collector, "crossfk_deletion", None)
        if plan is None:
            plan = collector.crossfk_deletion = cls(collector)
        return plan

    def source_collector(self, alias: str) -> Collector:
        # Of the same class: the admin's NestedObjects then records, in the
        # other database too, what it lists on the delete confirmation page.
        if alias not in self.source_collectors:
            self.source_collectors[alias] = type(self.collector)(
                using=alias, origin=self.collector.origin
            )
        return self.source_collectors[alias]

    def cascade(self, collector, field, sub_objs) -> None:
        rows = sub_objs  # a queryset, so that the Collector may fast-delete it
        is_nested = hasattr(collector, "edges")  # the admin's NestedObjects
        if is_nested:
            rows = list(sub_objs)
            # It names each row's target; give it the one in hand rather
            # than let it read each back from the target's database.
            targets = {
                target.pk: target
                for target in self.collector.data.get(field.remote_field.model, ())
            }
            for row in rows:
                target = targets.get(getattr(row, field.attname))
                if target is not None:
                    field.set_cached_value(row, target)
        collector.collect(
            rows,
            source=field.remote_field.model,
            source_attr=field.name,
            nullable=field.null,
        )
        if is_nested:  # Show the other database's rows on the same page.
            for source, targets_of_source in collector.edges.items():
                edges = self.collector.edges.setdefault(source, [])
                edges.extend(t for t in targets_of_source if t not in edges)
            for model, objs in collector.model_objs.items():
                self.collector.model_objs[model] |= objs
            self.collector.protected |= collector.protected

    def apply(self, action, field, sub_objs) -> None:
        alias = field.source_alias
        # The admin's NestedObjects asks for select_related() on the relation,
        # a join the referencing database cannot make.
        sub_objs = sub_objs.using(alias).select_related(None)
        self.applied_actions.append((action, field, sub_objs))
        collector = self.source_collector(alias)
        if action is CASCADE:
            self.cascade(collector, field, sub_objs)
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
        with atomic(*aliases):
            if connections[self.collector.using].vendor == "postgresql":
                self.recheck_under_lock()
            # Targets go first, so that their pre_delete receivers still see
            # the referencing rows, as with a real ForeignKey.
            deleted_counter.update(self.delete_targets()[1])
            for collector in self.source_collectors.values():
                deleted_counter.update(collector.delete()[1])
        return sum(deleted_counter.values()), dict(deleted_counter)

    def recheck_under_lock(self) -> None:
        """Lock the targets, then read their referencing rows once more.

        Collecting ran outside any transaction: a reference created since,
        under a FOR KEY SHARE lock (see ``missing_target_ids``), would be
        missed and left dangling. FOR UPDATE waits for such writers to
        commit; what they added is then cascaded, or blocks the delete.
        """
        targets = defaultdict(set)
        for _, field, _ in self.applied_actions:
            model = field.remote_field.model
            targets[model] |= {obj.pk for obj in self.collector.data.get(model, ())}
        for model, pks in targets.items():
            locked = model._base_manager.using(self.collector.using).filter(
                pk__in=IdSet(pks, model._meta.pk)
            )
            list(locked.select_for_update().values_list("pk"))
        for action, field, sub_objs in self.applied_actions:
            collector = self.source_collector(field.source_alias)
            if action is CASCADE:
                self.cascade(collector, field, sub_objs.all())
            elif action in (PROTECT, RESTRICT):
                cascaded = set(collector.data.get(field.model, ()))
                blocking = [obj for obj in sub_objs.all() if obj not in cascaded]
                if blocking:
                    error = ProtectedError if action is PROTECT else RestrictedError
                    raise error(
                        f"Cannot delete some instances of model "
                        f"'{field.remote_field.model.__name__}' because "
                        f"{field.describe()} refers to them since they were "
                        f"collected.",
                        set(blocking),
                    )
