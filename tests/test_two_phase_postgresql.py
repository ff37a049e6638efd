"""``crossfk.atomic(two_phase=True)`` and ``crossfk_recover`` on PostgreSQL.

A crash is simulated by leaving transactions prepared, exactly as a process
killed between PREPARE TRANSACTION and COMMIT PREPARED leaves them.
"""

import uuid
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connections

from crossfk import atomic
from crossfk.transaction import prepared_gid
from tests.factories import LinkFactory, PostFactory
from tests.testapp.models import Link, Post

# crossfk_recover looks for prepared transactions in every database.
pytestmark = [
    pytest.mark.django_db(databases="__all__", transaction=True),
    pytest.mark.vendors(default="postgresql", secondary="postgresql"),
]


def prepared_gids(alias):
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        )
        return [gid for (gid,) in cursor.fetchall()]


def prepare_by_hand(alias, gid, sql, params):
    """Leave one transaction prepared on ``alias``, as a crash would."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(sql, params)
        cursor.execute(f"PREPARE TRANSACTION '{gid}'")


def recover():
    stdout = StringIO()
    call_command("crossfk_recover", stdout=stdout)
    return stdout.getvalue()


def test_two_phase_commits_every_database():
    with atomic("default", "secondary", two_phase=True):
        link = LinkFactory()
    assert Link.objects.get().pk == link.pk
    assert Post.objects.get().pk == link.post_id
    assert prepared_gids("default") == prepared_gids("secondary") == []


def test_two_phase_rolls_back_every_database_on_error():
    with pytest.raises(ZeroDivisionError), atomic(two_phase=True):
        LinkFactory()
        1 / 0  # noqa: B018
    assert (Post.objects.count(), Link.objects.count()) == (0, 0)


def test_failed_prepare_rolls_back_the_database_already_prepared():
    real_execute = connections["secondary"].cursor

    def cursor_failing_on_prepare():
        cursor = real_execute()
        original = cursor.execute

        def execute(sql, params=None):
            if sql.startswith("PREPARE TRANSACTION"):
                raise DatabaseError("disk full")
            return original(sql, params)

        cursor.execute = execute
        return cursor

    patched = mock.patch.object(
        connections["secondary"], "cursor", cursor_failing_on_prepare
    )
    with (
        patched,
        pytest.raises(DatabaseError, match="disk full"),
        atomic("default", "secondary", two_phase=True),
    ):
        LinkFactory()
    assert (Post.objects.count(), Link.objects.count()) == (0, 0)
    assert prepared_gids("default") == []


def test_crash_after_prepare_is_committed_by_recover():
    crash_before_commit = mock.patch("crossfk.transaction.finish_prepared")
    with crash_before_commit, atomic("default", "secondary", two_phase=True):
        link = LinkFactory()
    assert Link.objects.count() == 0  # prepared, not committed
    assert len(prepared_gids("default")) == len(prepared_gids("secondary")) == 1

    output = recover()

    assert "committed on 'default', 'secondary' (2 of 2" in output
    assert Link.objects.get().post_id == link.post_id
    assert Post.objects.filter(pk=link.post_id).exists()


def test_crash_during_commit_phase_is_finished_by_recover():
    post = PostFactory()
    block = uuid.uuid4().hex
    # Participant 1 ("default") already committed; only 2 is still prepared.
    prepare_by_hand(
        "secondary",
        prepared_gid(block, 2, 2),
        "INSERT INTO testapp_link (url, post_id) VALUES (%s, %s)",
        ["https://a.example", post.pk],
    )

    output = recover()

    assert f"{block}: committed on 'secondary' (1 of 2" in output
    assert Link.objects.get().post_id == post.pk


def test_crash_during_prepare_phase_is_rolled_back_by_recover():
    block = uuid.uuid4().hex
    # Participant 1 prepared, participant 2 never was: nothing was decided.
    prepare_by_hand(
        "default",
        prepared_gid(block, 1, 2),
        "INSERT INTO testapp_post (title) VALUES (%s)",
        ["never committed"],
    )

    output = recover()

    assert f"{block}: rolled back on 'default' (1 of 2" in output
    assert Post.objects.count() == 0
    assert prepared_gids("default") == []


def test_recover_with_nothing_prepared_says_so():
    assert recover() == "No prepared crossfk transactions.\n"
