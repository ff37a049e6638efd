"""Concurrent writers on two servers leave no dangling reference.

Threads interleave creating links (inside ``crossfk.atomic``, where the
existence check locks the post with a shared lock) with deleting posts
(which lock them FOR UPDATE and read their links again under the lock).
Whatever order the servers pick, ``crossfk_check`` must find nothing
afterwards: on PostgreSQL, on MariaDB (in REPEATABLE READ too, with its
gap locks), and on one of each.
"""

import random
import threading
from contextlib import nullcontext
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connections
from django.db.backends.signals import connection_created
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext

from crossfk import CrossDBIntegrityError, atomic
from tests.factories import PostFactory
from tests.testapp.models import Link, Post, ProtectedLink

# Servers that lock rows; SQLite would refuse concurrent writers instead.
SERVERS = ("postgresql", "mysql")

pytestmark = [
    pytest.mark.django_db(databases=["default", "secondary"], transaction=True),
    pytest.mark.vendors(default=SERVERS, secondary=SERVERS),
]

THREADS = 4
OPERATIONS_PER_THREAD = 600  # 2,400 operations in all, per test


@pytest.fixture(
    params=[
        "read committed",  # Django's default on both servers
        pytest.param(
            "repeatable read",
            # Where the links are read again: the delete's recheck.
            marks=pytest.mark.vendors(default=SERVERS, secondary="mysql"),
        ),
    ]
)
def isolation_level(request):
    """Every MariaDB/MySQL connection the test opens at this isolation level."""

    def set_isolation_level(sender, connection, **kwargs):
        if connection.vendor == "mysql":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SET SESSION TRANSACTION ISOLATION LEVEL {request.param}"
                )

    connection_created.connect(set_isolation_level)
    connections.close_all()
    yield request.param
    connection_created.disconnect(set_isolation_level)
    connections.close_all()


def run_concurrently(operation, post_ids):
    """Run ``operation`` THREADS x OPERATIONS_PER_THREAD times; tally outcomes."""
    outcomes, lock, errors = [], threading.Lock(), []

    def worker(seed):
        chooser = random.Random(seed)
        try:
            for _ in range(OPERATIONS_PER_THREAD):
                outcome = operation(chooser, chooser.choice(post_ids))
                with lock:
                    outcomes.append(outcome)
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return {name: outcomes.count(name) for name in set(outcomes)}


def create_or_delete(model, blocked_error):
    def operation(chooser, post_id):
        try:
            if chooser.random() < 0.8:
                with atomic("default", "secondary"):
                    model.objects.create(post=Post.objects.get(pk=post_id))
                return "created"
            Post.objects.filter(pk=post_id).delete()
            return "deleted"
        except (Post.DoesNotExist, CrossDBIntegrityError):
            return "post gone"
        except blocked_error:
            return "delete blocked"
        except DatabaseError as error:
            # PostgreSQL's "deadlock detected", InnoDB's "Deadlock found":
            # the transaction rolled back, nothing dangles.
            if "deadlock" in str(error).lower():
                return "deadlock"
            raise

    return operation


def assert_no_dangling_reference(label):
    stdout = StringIO()
    call_command("crossfk_check", label, stdout=stdout)  # raises if any dangles
    assert " 0 dangling" in stdout.getvalue()


def test_cascade_under_concurrent_creates_and_deletes(isolation_level):
    post_ids = [post.pk for post in PostFactory.create_batch(60, author=None)]

    outcomes = run_concurrently(create_or_delete(Link, ()), post_ids)

    assert outcomes.get("created", 0) > 0
    assert outcomes.get("deleted", 0) > 0
    assert sum(outcomes.values()) == THREADS * OPERATIONS_PER_THREAD
    assert_no_dangling_reference("testapp.Link.post")
    remaining = set(Post.objects.values_list("pk", flat=True))
    assert set(Link.objects.values_list("post_id", flat=True)) <= remaining


def test_protect_under_concurrent_creates_and_deletes(isolation_level):
    post_ids = [post.pk for post in PostFactory.create_batch(60, author=None)]

    outcomes = run_concurrently(
        create_or_delete(ProtectedLink, ProtectedError), post_ids
    )

    assert outcomes.get("created", 0) > 0
    assert outcomes.get("delete blocked", 0) > 0
    assert_no_dangling_reference("testapp.ProtectedLink.post")


def commits_of(block_body):
    """The aliases in the order ``crossfk.atomic("default", "secondary")``
    committed them around ``block_body()``."""
    committed = []
    with atomic("default", "secondary"):
        block_body()
        for alias in ("default", "secondary"):
            connections[alias].on_commit(
                lambda alias=alias: committed.append(alias), robust=False
            )
    return committed


def test_a_database_where_targets_were_only_locked_commits_last():
    # The post's shared lock lasts until the link has committed: a delete
    # waiting for it then sees the link and cascades to it.
    post = PostFactory(author=None)

    committed = commits_of(
        lambda: Link.objects.create(url="https://a.example", post=post)
    )

    assert committed == ["secondary", "default"]


def test_a_database_where_targets_were_saved_commits_first():
    def create_both():
        post = Post.objects.create(title="new")
        Link.objects.create(url="https://a.example", post=post)

    assert commits_of(create_both) == ["default", "secondary"]


def sql_checking_a_new_link(post, *aliases):
    """The SQL the link's existence check sent to "default", inside a
    ``crossfk.atomic`` over ``aliases`` if any."""
    with (
        CaptureQueriesContext(connections["default"]) as queries,
        atomic(*aliases) if aliases else nullcontext(),
    ):
        Link.objects.create(url="https://a.example", post=post)
    return [query["sql"] for query in queries if Post._meta.db_table in query["sql"]]


@pytest.mark.vendors(default="postgresql")
def test_postgresql_locks_the_target_for_key_share():
    # FOR KEY SHARE leaves the post's other columns free to update.
    post = PostFactory(author=None)

    [sql] = sql_checking_a_new_link(post, "default", "secondary")

    assert sql.endswith(" FOR KEY SHARE")


@pytest.mark.vendors(default="mysql")
def test_mariadb_and_mysql_lock_the_target_in_share_mode():
    post = PostFactory(author=None)

    [sql] = sql_checking_a_new_link(post, "default", "secondary")

    assert sql.endswith(" LOCK IN SHARE MODE")


def test_no_lock_outside_a_transaction_on_the_targets_database():
    # In autocommit the lock would end with the statement.
    post = PostFactory(author=None)

    [sql] = sql_checking_a_new_link(post)

    assert "SHARE" not in sql
