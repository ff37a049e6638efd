"""Referential actions across databases.

Django's ``Collector`` gathers what a delete must touch, then deletes it, all
in one database. A CrossDBForeignKey hands the Collector a ``CrossOnDelete``
instead of the user's action. When a Collector reaches the relation, the
action runs in the referencing rows' own database, through the one collector
the delete has there (the root, the Collector Django made, for its own
alias). Restricted rows are checked once, by the root's own final check,
after every path is collected: as in Django, a row that one path restricts
and another cascades does not block. The root's ``delete()`` then deletes in
every database, in the order one Collector would have used for the whole
graph, inside ``crossfk.atomic`` (on PostgreSQL after locking the targets
and reading their references again). ``PROTECT`` and ``RESTRICT`` raise
before any database is written. Each batch of targets costs one query per
referencing model.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from functools import partial
from itertools import chain
from operator import attrgetter
from typing import Any

from django.db import connections
from django.db.models import (
    CASCADE,
    PROTECT,
    RESTRICT,
    Model,
    QuerySet,
    RestrictedError,
    signals,
    sql,
)
from django.db.models.deletion import Collector

from crossfk.deferred import is_deferred
from crossfk.exceptions import CrossDBTransactionError
from crossfk.locking import latest_rows, lock_for_update, locks_rows
from crossfk.outbox import record_deleted_targets
from crossfk.parallel import release_connections, run_per_alias
from crossfk.placement import names
from crossfk.relations import CrossRelation
from crossfk.transaction import (
    atomic,
    declare,
    owning_block,
    roll_back_together,
    settle_together,
)

# The attribute of each collector that names the delete it takes part in.
DELETION = "crossfk_deletion"

# What one collector deletes of one model: (collector, model, instances).
Batch = tuple[Collector, type[Model], list[Model]]


def has_writes(collector: Collector) -> bool:
    """Whether ``collector`` has rows to delete or update; its lazy querysets
    ask their database."""
    pending = chain(collector.fast_deletes, *collector.field_updates.values())
    return bool(collector.data) or any(
        objs.exists() if isinstance(objs, QuerySet) else bool(objs) for objs in pending
    )


# The action a CrossDBForeignKey was declared with: CASCADE, PROTECT, ...
OnDelete = Callable[[Collector, Any, Any, str], None]


class CrossOnDelete:
    """The ``on_delete`` Django's Collector sees for a CrossDBForeignKey."""

    # Keep the Collector from evaluating sub_objs: it would read them from
    # the target's database, which does not hold them.
    lazy_sub_objs = True

    def __init__(self, action: OnDelete) -> None:
        self.action = action

    def __call__(
        self,
        collector: Collector,
        field: CrossRelation,
        sub_objs: QuerySet[Any],
        using: str,
    ) -> None:
        CrossDeletion.attach(collector).apply(self.action, field, sub_objs, using)


class CrossDeletion:
    """One delete over several databases: one collector per alias, one order."""

    def __init__(self, root: Collector) -> None:
        self.root = root
        self.collectors: dict[str, Collector] = {root.using: root}
        # Every collected model, in the order one Collector would have met it.
        self.model_order: dict[type[Model], None] = {}
        # (action, field, referencing rows) of each cross relation met.
        self.applied_actions: list[tuple[OnDelete, CrossRelation, QuerySet[Any]]] = []
        # (target alias, referencing alias) of each relation whose action ran.
        self.followed: Counter[tuple[str, str]] = Counter()
        # (field, alias of the deleted targets) of each deferred action met.
        self.deferred_actions: dict[tuple[CrossRelation, str], None] = {}
        setattr(root, DELETION, self)
        # The one place crossfk replaces a method of a Django object:
        # Model.delete() and QuerySet.delete() build a Collector and call its
        # delete(), and no Django API deletes over several databases or lets
        # a caller choose the Collector's class (see docs/internals.rst).
        root.delete = self.delete  # type: ignore[method-assign]

    @classmethod
    def attach(cls, collector: Collector) -> CrossDeletion:
        """The delete ``collector`` takes part in; a new one for a root."""
        deletion: CrossDeletion | None = getattr(collector, DELETION, None)
        return deletion or cls(collector)

    def collector_for(self, alias: str) -> Collector:
        """The delete's collector for ``alias``, made on first use."""
        if alias not in self.collectors:
            options: dict[str, Any] = {}
            if hasattr(self.root, "force_collection"):  # Django 6.1
                options["force_collection"] = self.root.force_collection
            # Of the root's class: the admin's NestedObjects then records, in
            # the other database too, what it lists on the confirmation page.
            collector = type(self.root)(using=alias, origin=self.root.origin, **options)
            setattr(collector, DELETION, self)
            self.collectors[alias] = collector
        return self.collectors[alias]

    # Collecting --------------------------------------------------------------

    def apply(
        self,
        action: OnDelete,
        field: CrossRelation,
        sub_objs: QuerySet[Any],
        target_alias: str,
    ) -> None:
        """Run ``action`` for the rows of ``field`` that refer to targets
        deleted in ``target_alias``, in each database they may live in
        (every tenant's; the targets' own, for a target local to each).

        A deferred action only notes the relation: its outbox rows are
        written with the delete, and no database is asked anything now.
        """
        if is_deferred(action):
            self.deferred_actions[field, target_alias] = None
            return
        # The admin's NestedObjects asks for select_related() on the relation,
        # a join the referencing database cannot make.
        sub_objs = sub_objs.select_related(None)
        for alias in field.referencing_aliases_for(target_alias):
            rows = sub_objs.using(alias)
            self.applied_actions.append((action, field, rows))
            self.followed[target_alias, alias] += 1
            self.note_collected_models()
            self.run(action, field, rows)
            self.note_collected_models()
        self.gather_restricted()

    def run(
        self, action: OnDelete, field: CrossRelation, sub_objs: QuerySet[Any]
    ) -> None:
        """Call ``action`` as Django's Collector does, in the rows' own collector."""
        collector = self.collector_for(sub_objs.db)
        if action is CASCADE:
            self.cascade(collector, field, sub_objs)
        elif getattr(action, "lazy_sub_objs", False) or sub_objs:
            # As Django does: SET_DEFAULT and SET(callable) only compute their
            # value when some row refers to the deleted targets. PROTECT
            # raises; RESTRICT records the rows in ``collector``, and
            # gather_restricted() hands them to the root.
            action(collector, field, sub_objs, collector.using)

    def cascade(
        self, collector: Collector, field: CrossRelation, sub_objs: QuerySet[Any]
    ) -> None:
        # A queryset, so that the Collector may fast-delete it.
        rows: Any = sub_objs
        is_nested = hasattr(collector, "edges")  # the admin's NestedObjects
        if is_nested:
            rows = list(sub_objs)
            self.cache_targets(field, rows)
        collector.collect(
            rows,
            source=field.remote_field.model,
            source_attr=field.name,
            nullable=field.null,
            # Restricted rows are checked once every path is collected.
            fail_on_restricted=False,
        )
        if is_nested and collector is not self.root:
            self.show_on_root(collector)

    def cache_targets(self, field: CrossRelation, rows: list[Model]) -> None:
        """Give each row its collected target.

        NestedObjects names each row's target; it then has the one in hand
        rather than read each back from the target's database.
        """
        target_attname = field.target_field.attname
        targets = {
            getattr(target, target_attname): target
            for collector in self.collectors.values()
            for target in collector.data.get(field.remote_field.model, ())
        }
        for row in rows:
            target = targets.get(getattr(row, field.attname))
            if target is not None:
                field.set_cached_value(row, target)

    def show_on_root(self, collector: Any) -> None:
        """Copy another database's NestedObjects findings onto the root's page."""
        root: Any = self.root  # A NestedObjects, as collector is.
        for source, targets_of_source in collector.edges.items():
            edges = root.edges.setdefault(source, [])
            edges.extend(t for t in targets_of_source if t not in edges)
        for model, objs in collector.model_objs.items():
            root.model_objs[model] |= objs
        root.protected |= collector.protected

    def note_collected_models(self) -> None:
        """Append the models collected since the last call to ``model_order``.

        It is called on entering and leaving each cross relation's action,
        and between two calls only one collector collects (the one running
        the action, or the one that met the relation), so each collector's
        new models come at the point one Collector would have met them.
        """
        for collector in self.collectors.values():
            self.model_order.update(dict.fromkeys(collector.data))

    def gather_restricted(self) -> None:
        """Move every collector's restricted rows to the root, less those collected.

        Django clears restricted rows against its own collector only, which
        holds none of the other databases' rows. What is left when the root's
        top-level collect() ends makes it raise Django's RestrictedError,
        naming the model the delete started from.
        """
        # django-stubs key restricted_objects by instance; Django by model.
        restricted: Any = self.root.restricted_objects
        for collector in self.collectors.values():
            if collector is not self.root:
                restricted_here: Any = collector.restricted_objects
                for model, objs_by_field in restricted_here.items():
                    for field, objs in objs_by_field.items():
                        restricted[model].setdefault(field, set()).update(objs)
                collector.restricted_objects.clear()
        for collector in self.collectors.values():
            for model, instances in collector.data.items():
                self.root.clear_restricted_objects_from_set(model, set(instances))
            for queryset in collector.fast_deletes:
                self.root.clear_restricted_objects_from_queryset(
                    queryset.model, queryset
                )

    # Deleting ----------------------------------------------------------------

    def delete(self) -> tuple[int, dict[str, int]]:
        """Delete what every collector holds; return Django's counts for them all.

        Mirrors ``Collector.delete()``, the same code in Django 5.2 and 6.1,
        phase by phase over every collector, since no Django API deletes over
        several databases. Its shortcut for a lone row it can fast-delete
        never applies: a row that a cross relation refers to cannot be.
        """
        aliases = self.aliases_to_write()
        block = owning_block(aliases, f"Deleting {self.describe_root()}")
        if block is not None and not roll_back_together(aliases):
            for field, values in self.targets_of_cross_relations().items():
                block.check_deleted_at_commit(field, values)
        in_outer_block = any(connections[alias].in_atomic_block for alias in aliases)
        with atomic(*aliases):
            if len(aliases) > 1:
                declare(self.root.using, deletes=self.followed)
            if locks_rows(self.root.using):
                self.recheck_under_lock()
                # References created meanwhile in a database left out of the
                # block (it had nothing to write) cannot be written now.
                self.refuse_late_writes(aliases, in_outer_block)
            batches = self.sort()
            self.send_pre_delete(batches)
            deleted_counter: Counter[str] = Counter()
            self.fast_delete_and_update(deleted_counter, aliases)
            self.delete_batches(batches, deleted_counter)
            self.record_deferred_actions()
        self.clear_primary_keys(batches)
        return sum(deleted_counter.values()), dict(deleted_counter)

    def aliases_to_write(self) -> list[str]:
        """The databases this delete writes to, the root's first.

        Under an open transaction that not every database is part of, or
        when the delete reached every database of a model placed in several,
        the lazy querysets of fast deletes and field updates are asked
        whether they have rows: an alias with nothing to write needs no
        transaction.
        """
        aliases = list(self.collectors)
        if settle_together(aliases) and not self.reaches_partitions():
            return aliases
        return [self.root.using, *self.with_writes(a for a in aliases[1:])]

    def with_writes(self, aliases: Iterable[str]) -> list[str]:
        """Those of ``aliases`` whose collector has rows to write, all asked
        at once; the connections to the others are released, as the end of
        a request would (``CONN_MAX_AGE``): 64 tenants asked are not 64 kept."""

        def ask(alias: str) -> bool:
            writes = has_writes(self.collectors[alias])
            if not writes:
                release_connections([alias])  # at once: not 64 open at the peak
            return writes

        asked = run_per_alias(ask, aliases, lend=True)
        return [alias for alias, writes in asked.items() if writes]

    def reaches_partitions(self) -> bool:
        """Whether a relation took this delete into every database of a
        model placed in several: only those with rows to write take part."""
        return any(
            len(field.referencing_aliases) > 1 for _, field, _ in self.applied_actions
        )

    def describe_root(self) -> str:
        model, instances = next(iter(self.root.data.items()), (None, ()))
        if model is None:
            return "rows"
        pks = ", ".join(str(instance.pk) for instance in list(instances)[:10])
        return f"{model._meta.object_name} {pks}"

    def targets_of_cross_relations(self) -> dict[CrossRelation, set[Any]]:
        """{field: target values deleted} for each cross relation whose
        on_delete this delete applies."""
        targets: defaultdict[CrossRelation, set[Any]] = defaultdict(set)
        for _, field, _ in self.applied_actions:
            for alias in self.collectors:
                targets[field].update(self.deleted_targets(field, alias))
        return targets

    def deleted_targets(self, field: CrossRelation, alias: str) -> list[Any]:
        """The values ``field`` refers to of the targets deleted in ``alias``."""
        deleted = self.collectors[alias].data.get(field.remote_field.model, ())
        return [getattr(target, field.target_field.attname) for target in deleted]

    def sort(self) -> list[Batch]:
        """Each collector's rows, in the order one Collector would delete them.

        As Django: instances by primary key; models by dependency, else in
        the order they were collected, by Django's own ``Collector.sort()``
        over every collector's models and dependencies.
        """
        self.note_collected_models()
        sorter = Collector(using=self.root.using)
        sorter.data = {model: [] for model in self.model_order}
        sorted_data: dict[Collector, dict[type[Model], list[Model]]] = {}
        for collector in self.collectors.values():
            dependencies: Any = collector.dependencies  # By model, in Django.
            for model, depended_on in dependencies.items():
                sorter.dependencies[model] |= depended_on
            sorted_data[collector] = {
                model: sorted(instances, key=attrgetter("pk"))
                for model, instances in collector.data.items()
            }
            collector.data.update(sorted_data[collector])
        sorter.sort()
        return [
            (collector, model, sorted_data[collector][model])
            for model in sorter.data
            for collector in self.collectors.values()
            if model in collector.data
        ]

    def send_pre_delete(self, batches: list[Batch]) -> None:
        for batch in batches:
            self.send(signals.pre_delete, batch)

    def send(self, signal: signals.ModelSignal, batch: Batch) -> None:
        """Send ``signal`` for each row of ``batch``, as Django's Collector does."""
        collector, model, instances = batch
        if not model._meta.auto_created:
            for obj in instances:
                signal.send(
                    sender=model,
                    instance=obj,
                    using=collector.using,
                    origin=self.root.origin,
                )

    def fast_delete_and_update(
        self, deleted_counter: Counter[str], aliases: list[str]
    ) -> None:
        """Each database's fast deletes, then its field updates.

        Django's ``Collector.delete()`` does exactly these two phases for a
        collector that holds no instances, so each collector's fast deletes,
        then its field updates, are handed to such a one. Across databases no
        order shows: these phases send no signal and no constraint spans two
        databases. The fast deletes, plain DELETEs in their own database, run
        in every database at once; a field update may check a new target in
        another database, on the caller's connection to it.
        """

        def run_phase(alias: str, phase: str) -> Counter[str]:
            collector = self.collectors[alias]
            phases = Collector(using=alias, origin=self.root.origin)
            setattr(phases, phase, getattr(collector, phase))
            return Counter(phases.delete()[1])

        fast = [alias for alias in aliases if self.collectors[alias].fast_deletes]
        for counts in run_per_alias(
            partial(run_phase, phase="fast_deletes"), fast, lend=True
        ).values():
            deleted_counter.update(counts)
        for alias in aliases:
            if self.collectors[alias].field_updates:
                deleted_counter.update(run_phase(alias, "field_updates"))

    def delete_batches(
        self, batches: list[Batch], deleted_counter: Counter[str]
    ) -> None:
        """Delete each batch and send its post_delete, as Django does."""
        # Django sends post_delete in descending primary key order.
        for _, _, instances in batches:
            instances.reverse()
        for batch in batches:
            collector, model, instances = batch
            count = sql.DeleteQuery(model).delete_batch(
                [obj.pk for obj in instances], collector.using
            )
            if count:
                deleted_counter[model._meta.label] += count
            self.send(signals.post_delete, batch)

    def record_deferred_actions(self) -> None:
        """Write the outbox rows of the targets deleted with a deferred action."""
        by_alias: defaultdict[str, dict[CrossRelation, list[Any]]] = defaultdict(dict)
        for field, alias in self.deferred_actions:
            by_alias[alias][field] = self.deleted_targets(field, alias)
        for alias, targets in by_alias.items():
            record_deleted_targets(alias, targets)

    def clear_primary_keys(self, batches: list[Batch]) -> None:
        for _, model, instances in batches:
            for instance in instances:
                setattr(instance, model._meta.pk.attname, None)

    # Where rows are locked: references created while collecting --------------

    def recheck_under_lock(self) -> None:
        """Lock the targets, then run CASCADE, PROTECT and RESTRICT once more.

        Collecting ran outside any transaction: a reference created since,
        under a shared lock (see ``crossfk.locking``), would be missed and
        left dangling. FOR UPDATE waits for such writers to commit; what
        they added, read with a locking read, is then cascaded, or blocks
        the delete.
        """
        self.lock_targets()
        for action, field, sub_objs in list(self.applied_actions):
            collector = self.collector_for(sub_objs.db)
            if action is CASCADE and collector.can_fast_delete(sub_objs):
                continue  # Its DELETE runs under the lock and takes new rows too.
            if action in (CASCADE, PROTECT, RESTRICT):
                self.run(action, field, latest_rows(sub_objs.all()))
        self.gather_restricted()
        self.raise_if_restricted()

    def refuse_late_writes(self, aliases: list[str], in_outer_block: bool) -> None:
        """Raise if a database left out of the delete's block has rows to
        write now that the targets are locked: references created between
        collecting and locking, which the block cannot delete.

        Inside an outer block, its refusal says which databases it lacks.
        """
        late = self.with_writes(a for a in self.collectors if a not in aliases)
        if late and in_outer_block:
            owning_block([*aliases, *late], "The delete's recheck")
        if late:
            raise CrossDBTransactionError(
                f"Deleting {self.describe_root()}: rows referring to it were "
                f"written in {names(late)} while it was being "
                f"collected; nothing was deleted. Delete it again."
            )

    def lock_targets(self) -> None:
        """Lock FOR UPDATE, in their own database, the targets of every action."""
        target_pks: defaultdict[tuple[str, type[Model]], set[Any]] = defaultdict(set)
        for _, field, _ in self.applied_actions:
            model = field.remote_field.model
            for alias, collector in self.collectors.items():
                pks = {obj.pk for obj in collector.data.get(model, ())}
                if pks:
                    target_pks[alias, model] |= pks
        for (alias, model), pks in target_pks.items():
            lock_for_update(model, alias, pks)

    def raise_if_restricted(self) -> None:
        """Raise Django's RestrictedError for the root's restricted rows, if any."""
        restricted: Any = self.root.restricted_objects
        restricted = {
            f"'{model.__name__}.{field.name}'": objs
            for model, objs_by_field in restricted.items()
            for field, objs in objs_by_field.items()
            if objs
        }
        if restricted:
            # The root's first model is the one its top-level collect() got.
            deleted_model = next(iter(self.root.data))
            raise RestrictedError(
                f"Cannot delete some instances of model "
                f"{deleted_model.__name__!r} because they are referenced "
                f"through restricted foreign keys: {', '.join(restricted)}.",
                set(chain.from_iterable(restricted.values())),
            )
