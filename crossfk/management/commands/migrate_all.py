"""``migrate_all``: run ``migrate`` on every database alias.

One after the other by default; ``--parallel N`` migrates N databases at a
time (a database per tenant makes many), each in a thread of its own with
its own connection, and prints each database's output in one piece, in
``DATABASES`` order.
"""

from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections


class Command(BaseCommand):
    help = (
        "Migrate every database in DATABASES. The router decides which tables "
        "each one receives."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "app_label", nargs="?", help="App label of an application to migrate."
        )
        parser.add_argument(
            "migration_name", nargs="?", help="Migrate to this migration of the app."
        )
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive"
        )
        parser.add_argument(
            "--parallel",
            type=int,
            default=1,
            metavar="N",
            help="Migrate N databases at a time (default 1: one after the other).",
        )

    def handle(self, *args: Any, parallel: int, **options: Any) -> None:
        if parallel < 1:
            raise CommandError("--parallel must be at least 1.")
        aliases = list(settings.DATABASES)
        if parallel == 1:
            for alias in aliases:
                self.migrate(alias, self.stdout, self.stderr, options)
            return
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            outputs = list(
                pool.map(lambda alias: self.migrate_apart(alias, options), aliases)
            )
        for stdout, stderr in outputs:
            self.stdout.write(stdout, ending="")
            self.stderr.write(stderr, ending="")

    def migrate_apart(self, alias: str, options: dict[str, Any]) -> tuple[str, str]:
        """Migrate ``alias`` in this worker thread; its output, held back."""
        stdout, stderr = StringIO(), StringIO()
        try:
            self.migrate(alias, stdout, stderr, options)
        finally:
            connections[alias].close()  # This thread's own connection.
        return stdout.getvalue(), stderr.getvalue()

    def migrate(
        self, alias: str, stdout: Any, stderr: Any, options: dict[str, Any]
    ) -> None:
        positional = [
            options[name]
            for name in ("app_label", "migration_name")
            if options[name] is not None
        ]
        if options["verbosity"]:
            heading = f"Migrating database '{alias}'\n"
            stdout.write(self.style.MIGRATE_HEADING(heading))
        call_command(
            "migrate",
            *positional,
            database=alias,
            interactive=options["interactive"],
            verbosity=options["verbosity"],
            stdout=stdout,
            stderr=stderr,
        )
