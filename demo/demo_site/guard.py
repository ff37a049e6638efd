"""The browser tests' guardrails: each request of the demo server inside
``crossfk.testing.guard_cross_database()``, turned on by
``CROSSFK_DEMO_GUARD=1`` (tests_e2e/conftest.py sets it under
``--crossfk-guard``)."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from crossfk.testing import guard_cross_database


class GuardCrossDatabaseMiddleware:
    """Fail a request at a statement that crosses databases (first in
    ``MIDDLEWARE``, so that the request's own blocks are inside it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with guard_cross_database():
            return self.get_response(request)
