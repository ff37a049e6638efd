"""``migrate_all``: run ``migrate`` on every database alias in turn."""

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


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

    def handle(self, *args: Any, **options: Any) -> None:
        positional = [
            options[name]
            for name in ("app_label", "migration_name")
            if options[name] is not None
        ]
        for alias in settings.DATABASES:
            if options["verbosity"]:
                heading = f"Migrating database '{alias}'"
                self.stdout.write(self.style.MIGRATE_HEADING(heading))
            call_command(
                "migrate",
                *positional,
                database=alias,
                interactive=options["interactive"],
                verbosity=options["verbosity"],
                stdout=self.stdout,
                stderr=self.stderr,
            )
