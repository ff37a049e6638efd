"""``crossfk_check``: find (and optionally fix) references to missing rows.

Nothing stops a target row from being deleted behind crossfk's back (raw SQL,
another application, a restore of one database only). This command scans
every CrossDBForeignKey in batches: one query for a page of referencing rows,
one query for which of their targets exist. Pages are read by primary key
(keyset pagination), so memory does not grow with the table.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from crossfk.relations import CrossRelation, cross_foreign_keys

FIXES = ("delete", "null")


def named_fields(labels: list[str]) -> list[CrossRelation]:
    """The fields named by ``app_label[.Model[.field]]`` labels (all if none)."""
    fields = cross_foreign_keys()
    if not labels:
        return fields
    selected: list[CrossRelation] = []
    for label in labels:
        parts = label.lower().split(".")
        matches = [
            field
            for field in fields
            if [field.model._meta.app_label, field.model._meta.model_name, field.name][
                : len(parts)
            ]
            == parts
        ]
        if not matches:
            raise CommandError(f"No CrossDBForeignKey matches {label!r}.")
        selected += [field for field in matches if field not in selected]
    return selected


class Command(BaseCommand):
    help = (
        "Find references to rows missing from the other database, per "
        "CrossDBForeignKey. Exits with status 1 while any is found and not fixed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "labels",
            nargs="*",
            metavar="app_label[.Model[.field]]",
            help="Restrict the scan to these apps, models or fields.",
        )
        parser.add_argument(
            "--fix",
            choices=FIXES,
            help="delete the referencing rows (with their own on_delete "
            "cascades), or set the reference to NULL.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=2000,
            help="Referencing rows read per query (default 2000).",
        )

    def handle(
        self,
        *args: Any,
        labels: list[str],
        fix: str | None,
        batch_size: int,
        verbosity: int,
        **options: Any,
    ) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        fields = named_fields(labels)
        if fix == "null":
            not_nullable = [field.describe() for field in fields if not field.null]
            if not_nullable:
                raise CommandError(
                    f"--fix=null needs null=True; not so for "
                    f"{', '.join(not_nullable)}. Use --fix=delete or name "
                    f"other fields."
                )
        unfixed = 0
        for field in fields:
            dangling = self.scan(field, fix, batch_size, verbosity)
            label = f"{field.model._meta.label}.{field.name}"
            target = field.remote_field.model._meta.label
            outcome = (
                f", {'deleted' if fix == 'delete' else 'set to NULL'}"
                if (fix and dangling)
                else ""
            )
            self.stdout.write(
                f"{label} -> {target} ({', '.join(field.target_aliases)}): "
                f"{dangling} dangling{outcome}"
            )
            if not fix:
                unfixed += dangling
        if unfixed:
            raise CommandError(
                f"{unfixed} dangling reference(s) found. Run with --fix=delete "
                f"or --fix=null to repair them.",
                returncode=1,
            )

    def scan(
        self, field: CrossRelation, fix: str | None, batch_size: int, verbosity: int
    ) -> int:
        """Count (and fix) one field's dangling references, page by page."""
        alias = field.referencing_alias
        rows = field.model._base_manager.using(alias)
        show_progress = self.stderr.isatty()
        total = rows.count() if show_progress else None
        pk_name = field.model._meta.pk.attname
        last_pk, scanned, dangling = None, 0, 0
        while True:
            page = rows.order_by(pk_name)
            if last_pk is not None:
                page = page.filter(pk__gt=last_pk)
            rows_read = list(page.values_list(pk_name, field.attname)[:batch_size])
            if not rows_read:
                break
            last_pk, scanned = rows_read[-1][0], scanned + len(rows_read)
            targets = [target for _, target in rows_read]
            missing = set(field.missing_target_ids(targets, alias))
            broken = [(pk, target) for pk, target in rows_read if target in missing]
            dangling += len(broken)
            if verbosity >= 2:
                for pk, target in broken:
                    self.stdout.write(
                        f"  {field.model._meta.label} {pk!r}: "
                        f"{field.attname}={target!r} is missing"
                    )
            if fix and broken:
                self.fix(rows, field, fix, [pk for pk, _ in broken])
            if show_progress:
                self.stderr.write(
                    f"\r{field.describe()}: {scanned}/{total} rows", ending=""
                )
        if show_progress:
            self.stderr.write("")
        return dangling

    def fix(
        self, rows: QuerySet[Any], field: CrossRelation, fix: str, pks: list[Any]
    ) -> None:
        broken_rows = rows.filter(pk__in=pks)
        if fix == "delete":
            broken_rows.delete()
        else:
            broken_rows.update(**{field.attname: None})
