"""A process the fault tests kill at a commit boundary. Not a test module.

``python -m tests.crash_child SCENARIO[:MODE] BOUNDARY [POST_ID]`` runs one
multi-database write and sends itself SIGKILL just before its BOUNDARY-th
commit step (a COMMIT, a PREPARE TRANSACTION or a COMMIT PREPARED, an XA
PREPARE or an XA COMMIT), leaving the databases as a crash there would. It
exits normally if the write has fewer steps than that.
"""

import os
import signal
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from contextlib import ExitStack  # noqa: E402

from django.db import connections, transaction  # noqa: E402

from crossfk import atomic  # noqa: E402
from tests.testapp.models import Link, Post  # noqa: E402

COMMIT_STATEMENTS = (
    "PREPARE TRANSACTION",
    "COMMIT PREPARED",
    "XA PREPARE",
    "XA COMMIT",
)


class Crash:
    """Counts commit steps on every connection; dies before the chosen one."""

    def __init__(self, boundary: int) -> None:
        self.boundary, self.steps = boundary, 0

    def step(self) -> None:
        if self.steps == self.boundary:
            os.kill(os.getpid(), signal.SIGKILL)
        self.steps += 1

    def install(self) -> None:
        for alias in connections:
            connection = connections[alias]
            commit = connection.commit

            def counted_commit(commit=commit):
                self.step()
                commit()

            connection.commit = counted_commit
            connection.execute_wrappers.append(self.watch_statement)

    def watch_statement(self, execute, sql, params, many, context):
        if sql.startswith(COMMIT_STATEMENTS):
            self.step()
        return execute(sql, params, many, context)


def one_block(mode: str):
    """The block the write runs in: crossfk.atomic, with two-phase commit,
    or with the write inside Django's own savepoint on "default" (as the
    admin's transaction.atomic() inside AtomicRequestsMiddleware)."""
    block = atomic("default", "secondary", two_phase=mode == "two_phase")
    if mode != "savepoint":
        return block
    stack = ExitStack()
    stack.enter_context(block)
    stack.enter_context(transaction.atomic(using="default"))
    return stack


def create(mode: str) -> None:
    """Add only: a post and three links to it."""
    with one_block(mode):
        post = Post.objects.create(title="created by crash_child")
        for number in range(3):
            Link.objects.create(url=f"https://{number}.example", post=post)


def reference(post_id: int, mode: str) -> None:
    """Add only: a link to a post that already exists."""
    with one_block(mode):
        Link.objects.create(url="https://new.example", post_id=post_id)


def delete(mode: str) -> None:
    """Remove only: posts, cascading to their links in the other database."""
    with one_block(mode):
        Post.objects.filter(title="deleted by crash_child").delete()


if __name__ == "__main__":
    scenario, boundary, *post_id = sys.argv[1:]
    name, _, mode = scenario.partition(":")
    Crash(int(boundary)).install()
    arguments = [int(post_id[0])] if post_id else []
    {"create": create, "reference": reference, "delete": delete}[name](
        *arguments, mode=mode
    )
