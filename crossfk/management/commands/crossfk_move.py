"""``crossfk_move``: move a model's table to another database.

Changing a model's partition only changes where Django looks: ``migrate``
has already recorded the app's migrations as applied in the new database,
so the table is never created there, and the first query fails. This
command creates the table (and the model's automatic many-to-many tables)
in the new database, copies the rows in batches by primary key, verifies
the count and a checksum of every row on both sides, and resets the new
table's sequence. Run again, it resumes after the last primary key copied.
It never drops the old table: it prints what to do next.
"""

from __future__ import annotations

import hashlib

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connections, transaction
from django.db.models import Max


def tables_of(model) -> list:
    """The model, then its automatic many-to-many through models."""
    throughs = [
        field.remote_field.through
        for field in model._meta.local_many_to_many
        if field.remote_field.through._meta.auto_created
    ]
    return [model, *throughs]


def has_table(alias: str, model) -> bool:
    with connections[alias].cursor() as cursor:
        names = connections[alias].introspection.table_names(cursor)
    return model._meta.db_table in names


def row_digest(rows) -> str:
    """An order-independent SHA-256 of ``rows`` (tuples of column values)."""
    total = 0
    for row in rows:
        digest = hashlib.sha256(repr(tuple(map(str, row))).encode()).digest()
        total = (total + int.from_bytes(digest, "big")) % 2**256
    return f"{total:064x}"


class Command(BaseCommand):
    help = (
        "Move a model's table to another database: create it there, copy the "
        "rows in batches (resumable), verify count and checksum, reset the "
        "sequence. The old table is left in place."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", metavar="app_label.Model")
        parser.add_argument("--to", required=True, dest="target", metavar="ALIAS")
        parser.add_argument(
            "--from",
            dest="source",
            metavar="ALIAS",
            help="Where the table is now (default: the one database that has it).",
        )
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, **options):
        try:
            model = apps.get_model(options["model"])
        except (LookupError, ValueError) as error:
            raise CommandError(f"{options['model']!r}: {error}") from error
        target, source = options["target"], options["source"]
        for alias in filter(None, (target, source)):
            if alias not in settings.DATABASES:
                raise CommandError(f"{alias!r} is not a key of DATABASES.")
        source = source or self.find_source(model, target)
        if source == target:
            raise CommandError(f"{model._meta.label} is in {target!r} already.")
        label = model._meta.label
        self.stdout.write(f"Moving {label} from {source!r} to {target!r}.")
        for table_model in tables_of(model):
            self.create_table(table_model, target)
        for table_model in tables_of(model):
            self.copy(table_model, source, target, options["batch_size"])
            self.verify(table_model, source, target)
            self.reset_sequence(table_model, target)
        self.stdout.write(self.style.SUCCESS(f"{label}: every row is in {target!r}."))
        self.stdout.write(self.next_steps(model, source, target))

    def next_steps(self, model, source: str, target: str) -> str:
        label, quote = model._meta.label, connections[source].ops.quote_name
        drops = "".join(
            f"       DROP TABLE {quote(table_model._meta.db_table)};\n"
            for table_model in reversed(tables_of(model))
        )
        return (
            f"Next:\n"
            f"  1. Place it there: CROSSFK_PARTITIONS = {{{label!r}: {target!r}}}"
            f" (or MultiDBManager({target!r})), and deploy.\n"
            f"  2. Run crossfk_move {label} --to {target} again: it copies the "
            f"rows written since, and verifies.\n"
            f"  3. Run crossfk_check: references to it now read {target!r}.\n"
            f"  4. Drop the old table in {source!r}:\n{drops}"
        )

    def find_source(self, model, target: str) -> str:
        holders = [
            alias
            for alias in settings.DATABASES
            if alias != target and has_table(alias, model)
        ]
        if not holders and has_table(target, model):
            return target  # Refused as a move to where it is.
        if len(holders) != 1:
            found = ", ".join(map(repr, holders)) or "none"
            raise CommandError(
                f"{model._meta.label}: cannot tell where its table is now "
                f"(databases that have it: {found}); name it with --from."
            )
        return holders[0]

    def create_table(self, model, target: str) -> None:
        # create_model() makes the automatic many-to-many tables too.
        if not has_table(target, model):
            with connections[target].schema_editor() as editor:
                editor.create_model(model)
            self.stdout.write(f"  created {model._meta.db_table} in {target!r}")

    def copy(self, model, source: str, target: str, batch_size: int) -> None:
        """Copy the rows whose primary key is beyond the last one copied."""
        manager, table = model._base_manager, model._meta.db_table
        last = manager.using(target).aggregate(last=Max("pk"))["last"]
        if last is not None:
            self.stdout.write(f"  {table}: resuming after pk {last}")
        rows = manager.using(source).order_by("pk")

        def after(pk):
            """The source rows past ``pk``, in order."""
            return rows if pk is None else rows.filter(pk__gt=pk)

        total = after(last).count()
        fields = model._meta.local_concrete_fields
        ops = connections[target].ops
        size = max(1, min(batch_size, ops.bulk_batch_size(fields, [None] * batch_size)))
        copied = 0
        while batch := list(after(last)[:size]):
            with transaction.atomic(using=target):
                # Raw: the values as they are, without pre_save() (auto_now,
                # crossfk's existence checks): this is a copy.
                manager.using(target)._insert(
                    batch, fields=fields, using=target, raw=True
                )
            copied, last = copied + len(batch), batch[-1].pk
            self.stderr.write(f"  {table}: copied {copied}/{total}")

    def verify(self, model, source: str, target: str) -> None:
        names = [field.attname for field in model._meta.local_concrete_fields]
        sides = {}
        for alias in (source, target):
            rows = model._base_manager.using(alias).order_by("pk").values_list(*names)
            count = rows.count()
            sides[alias] = (count, row_digest(rows.iterator(chunk_size=2000)))
        (source_count, source_sum), (target_count, target_sum) = sides.values()
        if (source_count, source_sum) != (target_count, target_sum):
            raise CommandError(
                f"{model._meta.db_table}: {source!r} has {source_count} rows "
                f"(checksum {source_sum[:12]}), {target!r} has {target_count} "
                f"(checksum {target_sum[:12]}). Rows in {target!r} differ from "
                f"{source!r}: delete them there (or drop the table) and run again."
            )
        self.stdout.write(
            f"  {model._meta.db_table}: {target_count} rows, checksum "
            f"{target_sum[:12]}, the same in both"
        )

    def reset_sequence(self, model, target: str) -> None:
        connection = connections[target]
        statements = connection.ops.sequence_reset_sql(no_style(), [model])
        if statements:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
