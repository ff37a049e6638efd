"""``crossfk.atomic(two_phase=True)`` and ``crossfk_recover`` on PostgreSQL,
MariaDB (XA) and a mix of both.

A crash is simulated by leaving transactions prepared on a session that
then ends, exactly as a process killed between the prepares and the
commits leaves them.
"""

import uuid
from contextlib import ExitStack
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import (
    DatabaseError,
    NotSupportedError,
    OperationalError,
    connections,
    transaction,
)

from crossfk import CrossDBTransactionError, atomic
from crossfk.twophase import prepared_gid
from tests.factories import LinkFactory, PostFactory
from tests.testapp.models import Link, Post

TWO_PHASE = ("postgresql", "mysql")

# crossfk_recover looks for prepared transactions in every database.
pytestmark = [
    pytest.mark.django_db(databases="__all__", transaction=True),
    pytest.mark.vendors(default=TWO_PHASE, secondary=TWO_PHASE),
]


def prepared_transactions(alias):
    """The gids prepared in ``alias``'s database, as the server lists them:
    on MariaDB, the XA branches of the whole server whose qualifier is the
    database's name."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
            )
            return [gid for (gid,) in cursor.fetchall()]
        cursor.execute("XA RECOVER")
        name = connection.settings_dict["NAME"].encode()
        return [
            data[:gtrid_length].decode()
            for _, gtrid_length, _, data in cursor.fetchall()
            if data[gtrid_length:] == name
        ]


def roll_back_prepared_transactions():
    """What a failed test left prepared would hold its locks, and the flush
    after the test (or dropping the database) would wait for them."""
    for alias in connections:
        if connections[alias].vendor in TWO_PHASE:
            for gid in prepared_transactions(alias):
                finish_by_hand(alias, gid, commit=False)


@pytest.fixture(autouse=True)
def no_prepared_transaction_left(transactional_db):
    yield
    roll_back_prepared_transactions()


def xid(connection, gid):
    if connection.vendor == "postgresql":
        return f"'{gid}'"
    return f"'{gid}', X'{connection.settings_dict['NAME'].encode().hex()}'"


def prepare_by_hand(alias, gid, sql, params):
    """Leave one transaction prepared on ``alias`` by a session that ends,
    as a crash would."""
    connection = connections[alias].copy()
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("BEGIN")
                cursor.execute(sql, params)
                cursor.execute(f"PREPARE TRANSACTION {xid(connection, gid)}")
            else:
                cursor.execute(f"XA START {xid(connection, gid)}")
                cursor.execute(sql, params)
                cursor.execute(f"XA END {xid(connection, gid)}")
                cursor.execute(f"XA PREPARE {xid(connection, gid)}")
    finally:
        connection.close()


def finish_by_hand(alias, gid, commit):
    connection = connections[alias]
    verb = "COMMIT" if commit else "ROLLBACK"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"{verb} PREPARED {xid(connection, gid)}")
        else:
            cursor.execute(f"XA {verb} {xid(connection, gid)}")


def recover():
    stdout = StringIO()
    call_command("crossfk_recover", stdout=stdout)
    return stdout.getvalue()


def numbering():
    """The aliases of a block over both in the order it numbers them: the
    commit order on PostgreSQL (a link's post first); the referencing
    database first where XA START needs the numbers before the commit order
    is known."""
    if "mysql" in (connections["default"].vendor, connections["secondary"].vendor):
        return "'secondary', 'default'"
    return "'default', 'secondary'"


def test_two_phase_commits_every_database():
    with atomic("default", "secondary", two_phase=True):
        link = LinkFactory()
    assert Link.objects.get().pk == link.pk
    assert Post.objects.get().pk == link.post_id
    assert prepared_transactions("default") == prepared_transactions("secondary") == []


def test_two_phase_rolls_back_every_database_on_error():
    with pytest.raises(ZeroDivisionError), atomic(two_phase=True):
        LinkFactory()
        1 / 0  # noqa: B018
    assert (Post.objects.count(), Link.objects.count()) == (0, 0)
    assert prepared_transactions("default") == prepared_transactions("secondary") == []


def test_two_phase_block_marked_for_rollback_commits_nothing():
    with atomic("default", "secondary", two_phase=True):
        LinkFactory()
        transaction.set_rollback(True, using="secondary")
    assert (Post.objects.count(), Link.objects.count()) == (0, 0)
    assert prepared_transactions("default") == prepared_transactions("secondary") == []


def test_a_database_that_only_read_commits_with_the_others():
    # MariaDB prepares a branch that wrote nothing without keeping it.
    with atomic("default", "secondary", two_phase=True):
        post = PostFactory()
        assert not Link.objects.exists()
    assert Post.objects.get().pk == post.pk
    assert prepared_transactions("default") == prepared_transactions("secondary") == []


def test_two_phase_block_inside_another_joins_its_transaction():
    with atomic("default", "secondary", two_phase=True):
        with atomic("default", "secondary", two_phase=True):
            LinkFactory()
        LinkFactory()
    assert (Post.objects.count(), Link.objects.count()) == (2, 2)


def test_failed_prepare_rolls_back_the_database_already_prepared():
    prepares = []

    def fail_the_second_prepare(execute, sql, params, many, context):
        if sql.startswith(("PREPARE TRANSACTION", "XA PREPARE")):
            prepares.append(sql)
            if len(prepares) == 2:
                raise DatabaseError("disk full")
        return execute(sql, params, many, context)

    with (
        connections["default"].execute_wrapper(fail_the_second_prepare),
        connections["secondary"].execute_wrapper(fail_the_second_prepare),
        pytest.raises(DatabaseError, match="disk full"),
        atomic("default", "secondary", two_phase=True),
    ):
        LinkFactory()
    assert len(prepares) == 2
    assert (Post.objects.count(), Link.objects.count()) == (0, 0)
    assert prepared_transactions("default") == prepared_transactions("secondary") == []


def test_lost_connection_after_prepare_leaves_the_commit_to_recover():
    connection_lost = mock.patch(
        "crossfk.transaction.finish_prepared",
        side_effect=OperationalError("server closed the connection"),
    )
    with (
        connection_lost,
        pytest.raises(OperationalError, match="server closed"),
        atomic("default", "secondary", two_phase=True),
    ):
        link = LinkFactory()
    assert Link.objects.count() == 0  # prepared, not committed
    assert len(prepared_transactions("default")) == 1
    assert len(prepared_transactions("secondary")) == 1

    output = recover()

    assert f"committed on {numbering()} (2 of 2" in output
    assert Link.objects.get().post_id == link.post_id
    assert Post.objects.filter(pk=link.post_id).exists()
    assert prepared_transactions("default") == prepared_transactions("secondary") == []


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
    assert prepared_transactions("secondary") == []


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
    assert prepared_transactions("default") == []


def finishing_order(*aliases):
    """Record which database each COMMIT/ROLLBACK PREPARED or XA COMMIT/ROLLBACK
    went to, in order."""
    finished, stack = [], ExitStack()
    for alias in aliases:

        def record(execute, sql, params, many, context, alias=alias):
            if sql.startswith(
                ("COMMIT PREPARED", "ROLLBACK PREPARED", "XA COMMIT", "XA ROLLBACK")
            ):
                finished.append(alias)
            return execute(sql, params, many, context)

        stack.enter_context(connections[alias].execute_wrapper(record))
    return finished, stack


@pytest.mark.parametrize(
    ("count", "outcome", "order"),
    [
        (3, "rolled back", ["secondary", "default"]),
        (2, "committed", ["default", "secondary"]),
    ],
    ids=["rollback", "commit"],
)
def test_recover_commits_the_first_database_first_and_rolls_it_back_last(
    count, outcome, order
):
    # Interrupted in turn, recover must find the same decision again.
    block = uuid.uuid4().hex
    prepare_by_hand(
        "default",
        prepared_gid(block, 1, count),
        "INSERT INTO testapp_post (title) VALUES (%s)",
        ["first"],
    )
    prepare_by_hand(
        "secondary",
        prepared_gid(block, 2, count),
        "INSERT INTO testapp_link (url, post_id) VALUES (%s, %s)",
        ["https://a.example", 1],
    )
    finished, recording = finishing_order("default", "secondary")

    with recording:
        output = recover()

    assert f"{block}: {outcome} on 'default', 'secondary' (2 of {count}" in output
    assert finished == order
    assert (Post.objects.count(), Link.objects.count()) == (
        (0, 0) if count == 3 else (1, 1)
    )


def test_recover_with_nothing_prepared_says_so():
    assert recover() == "No prepared crossfk transactions.\n"


@pytest.mark.vendors(default="mysql")
def test_recover_leaves_the_xa_branches_of_other_databases_on_the_server():
    # The server's other databases (another tenant, another application)
    # name theirs with their own database name.
    gid = prepared_gid(uuid.uuid4().hex, 1, 1)
    elsewhere = connections["default"].copy()
    branch = f"'{gid}', X'{b'elsewhere'.hex()}'"
    with elsewhere.cursor() as cursor:
        cursor.execute(f"XA START {branch}")
        cursor.execute("INSERT INTO testapp_post (title) VALUES ('elsewhere')")
        cursor.execute(f"XA END {branch}")
        cursor.execute(f"XA PREPARE {branch}")
    elsewhere.close()
    try:
        assert recover() == "No prepared crossfk transactions.\n"
        with connections["default"].cursor() as cursor:
            cursor.execute("XA RECOVER")
            assert (1, len(gid), 9, f"{gid}elsewhere".encode()) in cursor.fetchall()
    finally:
        with connections["default"].cursor() as cursor:
            cursor.execute(f"XA ROLLBACK {branch}")


@pytest.mark.vendors(default="mysql")
def test_xa_cannot_begin_after_another_block_began_the_transaction():
    with transaction.atomic(using="default"):
        post = PostFactory()
        with (
            pytest.raises(CrossDBTransactionError) as raised,
            atomic("default", two_phase=True),
        ):
            PostFactory()
    assert str(raised.value) == (
        "crossfk.atomic('default') with two_phase=True must begin the "
        "transaction on 'default': MariaDB and MySQL start an XA transaction "
        "only before the first statement, but 'default' is inside a "
        "transaction.atomic() block. Nothing was written. Open the two-phase "
        "block outside the other one."
    )
    assert list(Post.objects.values_list("pk", flat=True)) == [post.pk]


@pytest.mark.vendors(default="sqlite", secondary="sqlite")
def test_two_phase_is_refused_where_the_database_has_none():
    with pytest.raises(NotSupportedError) as raised:
        atomic("default", "secondary", two_phase=True)
    assert str(raised.value) == (
        "two_phase=True needs PostgreSQL, MariaDB or MySQL; not so for "
        "'default', 'secondary'."
    )
