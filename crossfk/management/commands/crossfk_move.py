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
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import no_style
from django.db import connections, transaction
from django.db.models import Max, Model, QuerySet


def tables_of(model: type[Model]) -> list[type[Model]]:
    """The model, then its automatic many-to-many through models."""
    throughs = [
        through
        for field in model._meta.local_many_to_many
        if (through := field.remote_field.through) and through._meta.auto_created
    ]
    return [model, *throughs]


def has_table(alias: str, model: type[Model]) -> bool:
    with connections[alias].cursor() as cursor:
        names = connections[alias].introspection.table_names(cursor)
    return model._meta.db_table in names


def row_digest(rows: Iterable[tuple[Any, ...]]) -> str:
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

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", metavar="app_label.Model")
        parser.add_argument("--to", required=True, dest="to_alias", metavar="ALIAS")
        parser.add_argument(
            "--from",
            dest="from_alias",
            metavar="ALIAS",
            help="Where the table is now (default: the one database that has it).",
        )
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = apps.get_model(options["model"])
        except (LookupError, ValueError) as error:
            raise CommandError(f"{options['model']!r}: {error}") from error
        to_alias, from_alias = options["to_alias"], options["from_alias"]
        for alias in filter(None, (to_alias, from_alias)):
            if alias not in settings.DATABASES:
                raise CommandError(f"{alias!r} is not a key of DATABASES.")
        from_alias = from_alias or self.find_current_alias(model, to_alias)
        if from_alias == to_alias:
            raise CommandError(f"{model._meta.label} is in {to_alias!r} already.")
        label = model._meta.label
        self.stdout.write(f"Moving {label} from {from_alias!r} to {to_alias!r}.")
        for table_model in tables_of(model):
            self.create_table(table_model, to_alias)
        for table_model in tables_of(model):
            self.copy(table_model, from_alias, to_alias, options["batch_size"])
            self.verify(table_model, from_alias, to_alias)
            self.reset_sequence(table_model, to_alias)
        self.stdout.write(self.style.SUCCESS(f"{label}: every row is in {to_alias!r}."))
        self.stdout.write(self.next_steps(model, from_alias, to_alias))

    def next_steps(self, model: type[Model], from_alias: str, to_alias: str) -> str:
        label, quote = model._meta.label, connections[from_alias].ops.quote_name
        drops = "".join(
            f"       DROP TABLE {quote(table_model._meta.db_table)};\n"
            for table_model in reversed(tables_of(model))
        )
        return (
            f"Next:\n"
            f"  1. Place it there: CROSSFK_PARTITIONS = {{{label!r}: {to_alias!r}}}"
            f" (or MultiDBManager({to_alias!r})), and deploy.\n"
            f"  2. Run crossfk_move {label} --to {to_alias} again: it copies the "
            f"rows written since, and verifies.\n"
            f"  3. Run crossfk_check: references to it now read {to_alias!r}.\n"
            f"  4. Drop the old table in {from_alias!r}:\n{drops}"
        )

    def find_current_alias(self, model: type[Model], to_alias: str) -> str:
        holders = [
            alias
            for alias in settings.DATABASES
            if alias != to_alias and has_table(alias, model)
        ]
        if not holders and has_table(to_alias, model):
            return to_alias  # Refused as a move to where it is.
        if len(holders) != 1:
            found = ", ".join(map(repr, holders)) or "none"
            raise CommandError(
                f"{model._meta.label}: cannot tell where its table is now "
                f"(databases that have it: {found}); name it with --from."
            )
        return holders[0]

    def create_table(self, model: type[Model], to_alias: str) -> None:
        # create_model() makes the automatic many-to-many tables too.
        if not has_table(to_alias, model):
            with connections[to_alias].schema_editor() as editor:
                editor.create_model(model)
            self.stdout.write(f"  created {model._meta.db_table} in {to_alias!r}")

    def copy(
        self, model: type[Model], from_alias: str, to_alias: str, batch_size: int
    ) -> None:
        """Copy the rows whose primary key is beyond the last one copied."""
        manager, table = model._base_manager, model._meta.db_table
        last = manager.using(to_alias).aggregate(last=Max("pk"))["last"]
        if last is not None:
            self.stdout.write(f"  {table}: resuming after pk {last}")
        rows = manager.using(from_alias).order_by("pk")

        def after(pk: Any) -> QuerySet[Any]:
            """The from_alias rows past ``pk``, in order."""
            return rows if pk is None else rows.filter(pk__gt=pk)

        total = after(last).count()
        fields = model._meta.local_concrete_fields
        ops = connections[to_alias].ops
        size = max(1, min(batch_size, ops.bulk_batch_size(fields, [None] * batch_size)))
        copied = 0
        while batch := list(after(last)[:size]):
            with transaction.atomic(using=to_alias):
                # Raw: the values as they are, without pre_save() (auto_now,
                # crossfk's existence checks): this is a copy.
                manager.using(to_alias)._insert(  # type: ignore[attr-defined]
                    batch, fields=fields, using=to_alias, raw=True
                )
            copied, last = copied + len(batch), batch[-1].pk
            self.stderr.write(f"  {table}: copied {copied}/{total}")

    def verify(self, model: type[Model], from_alias: str, to_alias: str) -> None:
        names = [field.attname for field in model._meta.local_concrete_fields]
        sides: dict[str, tuple[int, str]] = {}
        for alias in (from_alias, to_alias):
            rows = model._base_manager.using(alias).order_by("pk").values_list(*names)
            count = rows.count()
            sides[alias] = (count, row_digest(rows.iterator(chunk_size=2000)))
        (from_count, from_sum), (to_count, to_sum) = sides.values()
        if (from_count, from_sum) != (to_count, to_sum):
            raise CommandError(
                f"{model._meta.db_table}: {from_alias!r} has {from_count} rows "
                f"(checksum {from_sum[:12]}), {to_alias!r} has {to_count} "
                f"(checksum {to_sum[:12]}). Rows in {to_alias!r} differ from "
                f"{from_alias!r}: delete them there (or drop the table) and run again."
            )
        self.stdout.write(
            f"  {model._meta.db_table}: {to_count} rows, checksum "
            f"{to_sum[:12]}, the same in both"
        )

    def reset_sequence(self, model: type[Model], to_alias: str) -> None:
        connection = connections[to_alias]
        statements = connection.ops.sequence_reset_sql(no_style(), [model])
        if statements:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
