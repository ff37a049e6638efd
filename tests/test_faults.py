"""A process killed at any commit boundary leaves no dangling reference.

``tests/crash_child.py`` runs one multi-database write and sends itself
SIGKILL before its n-th commit step, for n = 0, 1, 2, ... until it finishes.
After each crash, ``crossfk_check`` must find nothing: crossfk.atomic's
commit order guarantees that for blocks that only add or only remove
references. With ``two_phase=True``, ``crossfk_recover`` must then leave
every block all-or-nothing, with nothing left prepared, on PostgreSQL,
MariaDB (XA) and a mix of both.
"""

import os
import signal
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from tests.factories import LinkFactory, PostFactory
from tests.test_two_phase import (
    TWO_PHASE,
    prepared_transactions,
    roll_back_prepared_transactions,
)
from tests.testapp.models import Link, Post

# crossfk_recover looks for prepared transactions in every database.
pytestmark = [
    pytest.mark.django_db(databases="__all__", transaction=True),
    pytest.mark.vendors(default=TWO_PHASE, secondary=TWO_PHASE),
]


@pytest.fixture(autouse=True)
def no_prepared_transaction_left(transactional_db):
    yield
    roll_back_prepared_transactions()


REPO_ROOT = Path(__file__).resolve().parent.parent


def crash_at_each_boundary(scenario, *arguments, prepare=lambda: None):
    """Yield after each run of the child, killed one commit step later."""
    boundary = 0
    while True:
        prepare()
        environment = {
            **os.environ,
            "CROSSFK_PG_NAME": connections["default"].settings_dict["NAME"],
        }
        child = subprocess.run(
            [sys.executable, "-m", "tests.crash_child", scenario, str(boundary)]
            + [str(argument) for argument in arguments],
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if child.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(f"crash_child failed:\n{child.stderr}")
        yield boundary, child.returncode == 0
        if child.returncode == 0:
            return
        boundary += 1


def assert_no_dangling_reference():
    stdout = StringIO()
    call_command("crossfk_check", "testapp.Link.post", stdout=stdout)
    assert stdout.getvalue().endswith(": 0 dangling\n")


def recover():
    call_command("crossfk_recover", stdout=StringIO())
    assert prepared_transactions("default") == prepared_transactions("secondary") == []


def created_rows():
    posts = Post.objects.filter(title="created by crash_child")
    return posts.count(), Link.objects.filter(post__in=posts).count()


def remove_created_rows():
    Post.objects.filter(title="created by crash_child").delete()


# Each write runs in crossfk.atomic, and again inside Django's own savepoint
# on "default" within it (the admin's block inside AtomicRequestsMiddleware).
MODES = pytest.mark.parametrize("mode", ["", ":savepoint"], ids=["plain", "savepoint"])


@MODES
def test_crash_while_creating_a_post_and_its_links(mode):
    states = []
    for _, _ in crash_at_each_boundary("create" + mode, prepare=remove_created_rows):
        assert_no_dangling_reference()
        states.append(created_rows())
    # Killed before any commit, between the two (the post committed first:
    # it is unreferenced, not dangling), and not killed at all.
    assert states == [(0, 0), (1, 0), (1, 3)]


@MODES
def test_crash_while_linking_to_an_existing_post(mode):
    post = PostFactory()
    runs = list(crash_at_each_boundary("reference" + mode, post.pk))
    assert len(runs) == 3
    assert_no_dangling_reference()


def make_post_to_delete():
    """The post crash_child deletes, with three links, unless it survived."""
    if not Post.objects.filter(title="deleted by crash_child").exists():
        LinkFactory.create_batch(3, post=PostFactory(title="deleted by crash_child"))


def rows_to_delete():
    posts = Post.objects.filter(title="deleted by crash_child")
    return posts.count(), Link.objects.filter(post__in=posts).count()


@MODES
def test_crash_while_deleting_a_post_and_its_links(mode):
    states = []
    for _, _ in crash_at_each_boundary("delete" + mode, prepare=make_post_to_delete):
        assert_no_dangling_reference()
        states.append(rows_to_delete())
    # Killed before any commit, between the two (the links went first: the
    # post is left unreferenced, not a link dangling), and not killed.
    assert states == [(1, 3), (1, 0), (0, 0)]


def test_two_phase_create_is_all_or_nothing_after_recover():
    boundaries = []
    for boundary, _ in crash_at_each_boundary(
        "create:two_phase", prepare=remove_created_rows
    ):
        boundaries.append(boundary)
        recover()
        assert created_rows() in {(0, 0), (1, 3)}
        assert_no_dangling_reference()
    # PREPARE x2 (XA PREPARE on MariaDB), Django's two (then empty) COMMITs,
    # COMMIT PREPARED x2 (XA COMMIT).
    assert boundaries == list(range(7))


def test_two_phase_delete_is_all_or_nothing_after_recover():
    states = []
    for _, _ in crash_at_each_boundary("delete:two_phase", prepare=make_post_to_delete):
        recover()
        assert_no_dangling_reference()
        states.append(rows_to_delete())
    assert set(states) == {(1, 3), (0, 0)}
