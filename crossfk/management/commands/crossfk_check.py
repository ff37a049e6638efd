"""``crossfk_check``: find (and optionally fix) references to missing rows.

Nothing stops a target row from being deleted behind crossfk's back (raw SQL,
another application, a restore of one database only). This command scans
every CrossDBForeignKey in batches: one query for a page of referencing rows,
one query for which of their targets exist. Pages are read by primary key
(keyset pagination), so memory does not grow with the table. A model placed
in several databases is scanned in each (``--database`` narrows them), all
at the same time (``crossfk.parallel``).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from crossfk.cleanup import pending_targets
from crossfk.management import check_batches_and_databases
from crossfk.parallel import run_per_alias
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
            "--database",
            action="append",
            dest="databases",
            metavar="ALIAS",
            help="Scan the referencing rows in this database only (repeatable).",
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
        databases: list[str] | None = None,
        **options: Any,
    ) -> None:
        check_batches_and_databases(batch_size, databases)
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
            dangling = self.check_field(field, databases, fix, batch_size, verbosity)
            if not fix:
                unfixed += dangling
        if unfixed:
            raise CommandError(
                f"{unfixed} dangling reference(s) found. Run with --fix=delete "
                f"or --fix=null to repair them.",
                returncode=1,
            )

    def check_field(
        self,
        field: CrossRelation,
        databases: list[str] | None,
        fix: str | None,
        batch_size: int,
        verbosity: int,
    ) -> int:
        """Scan ``field`` in each database it lives in (of ``databases``);
        report each; return how many dangling references were found.

        Round by round: every database's next page at once, then one check
        of their targets together (one per database for a target beside
        each row); a database leaves after a short page.
        """
        aliases = [
            alias
            for alias in field.referencing_aliases
            if databases is None or alias in databases
        ]
        scans = {
            alias: Scan(field.model._base_manager.using(alias)) for alias in aliases
        }
        # One alias shows its progress; several are scanned at once.
        progress = len(aliases) == 1 and self.stderr.isatty()
        total = scans[aliases[0]].rows.count() if progress else None
        pending = aliases
        while pending:
            pages = run_per_alias(
                lambda alias: scans[alias].next_page(field, batch_size), pending
            )
            missing = self.missing_by_alias(field, pages)
            awaiting = pending_targets(field, set().union(*missing.values()))
            for alias, page in pages.items():
                broken = scans[alias].note_missing(
                    field, page, missing[alias], awaiting
                )
                if fix and broken:
                    self.fix(scans[alias].rows, field, fix, broken)
            if progress:
                scanned = scans[aliases[0]].scanned
                self.stderr.write(
                    f"\r{field.describe()}: {scanned}/{total} rows", ending=""
                )
            # A short page is the last: no query to find the next one empty.
            pending = [
                alias for alias, page in pages.items() if len(page) == batch_size
            ]
        if progress:
            self.stderr.write("")
        for alias, scan in scans.items():
            if verbosity >= 2:
                for line in scan.lines:
                    self.stdout.write(line)
            self.stdout.write(self.summary(field, alias, scan, fix))
        return sum(scan.dangling for scan in scans.values())

    def missing_by_alias(
        self, field: CrossRelation, pages: dict[str, list[tuple[Any, Any]]]
    ) -> dict[str, set[Any]]:
        """``{alias: the targets its page refers to that are missing}``."""
        if field.target_is_local:  # The same id is another row elsewhere.
            return run_per_alias(
                lambda alias: set(
                    field.missing_target_ids([t for _, t in pages[alias]], alias)
                ),
                pages,
            )
        every_target = [target for page in pages.values() for _, target in page]
        missing = set(field.missing_target_ids(every_target)) if every_target else set()
        return dict.fromkeys(pages, missing)

    def summary(
        self, field: CrossRelation, alias: str, scan: Scan, fix: str | None
    ) -> str:
        dangling = scan.dangling
        label = f"{field.model._meta.label}.{field.name}"
        target = field.remote_field.model._meta.label
        outcome = (
            f", {'deleted' if fix == 'delete' else 'set to NULL'}"
            if (fix and dangling)
            else ""
        )
        where = f" in '{alias}'" if len(field.referencing_aliases) > 1 else ""
        return (
            f"{label}{where} -> {target} ({', '.join(field.target_aliases)}): "
            f"{dangling} dangling{outcome}"
            + (f", {scan.pending} pending cleanup" if scan.pending else "")
        )

    def fix(
        self, rows: QuerySet[Any], field: CrossRelation, fix: str, pks: list[Any]
    ) -> None:
        broken_rows = rows.filter(pk__in=pks)
        if fix == "delete":
            broken_rows.delete()
        else:
            broken_rows.update(**{field.attname: None})


@dataclass
class Scan:
    """One field's scan of one database, page by page in primary key order."""

    rows: QuerySet[Any]
    last_pk: Any = None
    scanned: int = 0
    dangling: int = 0
    pending: int = 0  # refer to targets whose deferred action is pending
    lines: list[str] = dataclass_field(default_factory=list)

    def next_page(self, field: CrossRelation, batch_size: int) -> list[tuple[Any, Any]]:
        """(pk, reference) of the next ``batch_size`` rows that hold one."""
        pk_name = field.model._meta.pk.attname
        page = self.rows.order_by(pk_name)
        if self.last_pk is not None:
            page = page.filter(pk__gt=self.last_pk)
        rows = list(page.values_list(pk_name, field.attname)[:batch_size])
        if rows:
            self.last_pk, self.scanned = rows[-1][0], self.scanned + len(rows)
        return rows

    def note_missing(
        self,
        field: CrossRelation,
        page: list[tuple[Any, Any]],
        missing: set[Any],
        awaiting: set[Any],
    ) -> list[Any]:
        """Count the rows of ``page`` whose target is ``missing``, those
        ``awaiting`` their deferred action apart; the others' pks."""
        label = field.model._meta.label
        broken = []
        for pk, target in page:
            if target in awaiting:
                self.pending += 1
                self.lines.append(
                    f"  {label} {pk!r}: {field.attname}={target!r} is pending cleanup"
                )
            elif target in missing:
                broken.append(pk)
                self.lines.append(
                    f"  {label} {pk!r}: {field.attname}={target!r} is missing"
                )
        self.dangling += len(broken)
        return broken
