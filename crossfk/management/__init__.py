"""What crossfk's management commands share."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import connections

from crossfk.placement import names


def check_batches_and_databases(batch_size: int, databases: list[str] | None) -> None:
    """Refuse a ``--batch-size`` below 1 and a ``--database`` not in ``DATABASES``."""
    if batch_size < 1:
        raise CommandError("--batch-size must be at least 1.")
    unknown = [alias for alias in databases or () if alias not in connections]
    if unknown:
        raise CommandError(f"--database: {names(unknown)} not in DATABASES.")
