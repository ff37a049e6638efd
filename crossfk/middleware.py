"""``ATOMIC_REQUESTS`` over every database, as one ``crossfk.atomic``.

Django's ``ATOMIC_REQUESTS`` opens one ``transaction.atomic()`` per
database, each committed on its own: a write that spans two of them could
be rolled back in one and kept in the other, so crossfk refuses it. This
middleware wraps each view in a single ``crossfk.atomic`` over every
database instead, which commits them together in a safe order; everything
the view does through Django (the admin's own ``transaction.atomic()``
included) is settled with it.

Like ``ATOMIC_REQUESTS``, it covers the view (and the rendering of a
``TemplateResponse``), rolls back when the view raises, and honours
``django.db.transaction.non_atomic_requests``. Put it last in
``MIDDLEWARE``, and leave ``ATOMIC_REQUESTS`` off. It covers the databases
models are pinned to; a database of models placed in several (a tenant's)
when it is the ``crossfk.partition()`` the view runs in.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from crossfk.placement import names, working_aliases
from crossfk.transaction import atomic


class AtomicRequestsMiddleware:
    """Run each view in one ``crossfk.atomic`` over every database; put it
    last in ``MIDDLEWARE`` and leave ``ATOMIC_REQUESTS`` off."""

    sync_capable, async_capable = True, False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with ExitStack() as blocks:
            request._crossfk_blocks = blocks  # type: ignore[attr-defined]
            return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: Any,
        view_kwargs: Any,
    ) -> None:
        left_out: set[str] = getattr(view_func, "_non_atomic_requests", set())
        # A tenant's database is in the request's block only when the view
        # works in its partition: every tenant's on every request would
        # connect to all of them.
        aliases = [alias for alias in working_aliases() if alias not in left_out]
        if aliases and iscoroutinefunction(view_func):
            # As Django's ATOMIC_REQUESTS: only a view it would wrap.
            raise RuntimeError(
                f"AtomicRequestsMiddleware cannot wrap an async view, as "
                f"ATOMIC_REQUESTS cannot; decorate it with non_atomic_requests "
                f"for {names(aliases)}."
            )
        if aliases:
            blocks: ExitStack = request._crossfk_blocks  # type: ignore[attr-defined]
            blocks.enter_context(atomic(*aliases))
            request._crossfk_aliases = aliases  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # The view raised: roll back, as ATOMIC_REQUESTS does, whether or not
        # another middleware turns the exception into a response.
        for alias in getattr(request, "_crossfk_aliases", ()):
            transaction.set_rollback(True, using=alias)
