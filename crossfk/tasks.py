"""The cleanup of deferred actions as a task of Django's tasks framework.

Django 6.0+ only. ``crossfk.deferred`` enqueues it when a delete that wrote
outbox rows commits, on the ``TASKS`` backend that
``CROSSFK_CLEANUP_TASK_BACKEND`` names (``"default"``; None: not enqueued).
"""

from __future__ import annotations

from typing import Any

from django.tasks import task  # type: ignore[import-untyped,import-not-found,unused-ignore]

from crossfk.cleanup import DEFAULT_BATCH_SIZE, clean_up


@task  # type: ignore[untyped-decorator,unused-ignore]
def clean_up_deferred(
    aliases: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_limit: float | None = None,
) -> dict[str, Any]:
    """Apply the outbox of ``aliases`` (every one if None), as
    ``crossfk_cleanup`` does; return what it did."""
    return clean_up(aliases, batch_size=batch_size, time_limit=time_limit).as_dict()
