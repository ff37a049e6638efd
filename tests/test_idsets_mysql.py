"""Id sets on MySQL and MariaDB: one JSON document through JSON_TABLE,
compared as the plain parameter list would be, and a clear error, with the
connection intact, for a set no statement can carry."""

import uuid
from weakref import WeakKeyDictionary

import pytest
from django.db import connections
from django.db.models import IntegerField, UUIDField

from crossfk import idsets
from crossfk.exceptions import IdSetTooLarge
from crossfk.idsets import IdSet
from crossfk.testing import assert_queries_per_db
from tests.factories import (
    CharTargetFactory,
    KeyedReferenceFactory,
    PostFactory,
    UUIDTargetFactory,
)
from tests.testapp.models import CharTarget, KeyedReference, Post, UUIDTarget

pytestmark = [
    pytest.mark.django_db(databases=["default", "secondary"]),
    pytest.mark.vendors(default="mysql"),
]


@pytest.fixture
def unread_limits(monkeypatch):
    """Each connection reads its server's max_allowed_packet afresh."""
    monkeypatch.setattr(idsets, "_max_allowed_packets", WeakKeyDictionary())


def without_json_table(monkeypatch):
    monkeypatch.setattr(idsets, "has_json_table", lambda connection: False)


def posts_among(ids):
    return set(Post.objects.filter(pk__in=IdSet(ids, Post._meta.pk)))


# The SQL ------------------------------------------------------------------------


def mariadb(version):
    # Imported here: mysqlclient is installed only where MariaDB is tested.
    from django.db.backends.mysql.base import DatabaseWrapper as MySQL

    connection = MySQL({"NAME": "x", "TIME_ZONE": None}, alias="x")
    connection.__dict__["mysql_server_data"] = {"version": f"{version}-MariaDB"}
    return connection


def test_an_id_set_is_one_json_parameter_through_json_table_on_mariadb():
    ids = IdSet([3, 1, 3], IntegerField())
    assert ids.as_mysql(None, mariadb("10.11.6")) == (
        "SELECT j.v FROM JSON_TABLE(%s, '$[*]' COLUMNS (v integer PATH '$')) AS j",
        ["[3,1]"],
    )
    key = uuid.UUID(int=1)
    assert IdSet([key], UUIDField()).as_mysql(None, mariadb("10.11.6")) == (
        "SELECT JSON_UNQUOTE(j.v) "
        "FROM JSON_TABLE(%s, '$[*]' COLUMNS (v JSON PATH '$')) AS j",
        [f'["{key}"]'],  # MariaDB 10.7 has a uuid column type
    )


def test_an_id_set_is_a_parameter_list_on_mariadb_without_json_table():
    ids = IdSet([3, 1, 2**40], IntegerField())
    assert ids.as_mysql(None, mariadb("10.5.20")) == ("%s, %s", [3, 1])


# Large sets ---------------------------------------------------------------------


def test_two_million_ids_fit_in_one_statement_as_json(unread_limits):
    posts = set(PostFactory.create_batch(3))
    ids = {*range(1, 2_000_001), *(post.pk for post in posts)}
    # A large set reads the server's max_allowed_packet first.
    with assert_queries_per_db({"default": 2, "secondary": 0}):
        assert posts_among(ids) == posts


def test_the_limit_is_read_once_per_connection(monkeypatch, unread_limits):
    monkeypatch.setattr(idsets, "EVERY_SERVER_TAKES", 0)
    post = PostFactory()
    with assert_queries_per_db({"default": 2, "secondary": 0}):
        assert posts_among([post.pk]) == {post}
    with assert_queries_per_db({"default": 1, "secondary": 0}):
        assert posts_among([post.pk]) == {post}


def test_the_plain_list_cannot_carry_two_million_ids(monkeypatch):
    without_json_table(monkeypatch)
    PostFactory.create_batch(3)
    with pytest.raises(
        IdSetTooLarge, match=r"The set of 2,000,000 ids for testapp\.Post\.id"
    ):
        posts_among(range(1, 2_000_001))
    # Refused before it was sent: the connection is still open.
    assert Post.objects.count() == 3


def test_three_million_ids_fit_in_no_statement():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT @@max_allowed_packet")
        (limit,) = cursor.fetchone()
    expected = (
        rf"The set of 3,000,000 ids for testapp\.Post\.id takes [\d,]+ bytes, too "
        rf"many for one statement on database 'default', whose max_allowed_packet "
        rf"is {limit:,} bytes\."
    )
    with pytest.raises(IdSetTooLarge, match=expected):
        posts_among(range(1, 3_000_001))
    assert Post.objects.count() == 0


def test_the_error_names_the_field_the_ids_the_database_and_the_limit(monkeypatch):
    without_json_table(monkeypatch)
    monkeypatch.setattr(idsets, "EVERY_SERVER_TAKES", 0)
    monkeypatch.setattr(idsets, "max_allowed_packet", lambda connection: 100_000)
    with pytest.raises(IdSetTooLarge) as raised:
        posts_among(range(1, 10_001))
    assert str(raised.value) == (
        "The set of 10,000 ids for testapp.Post.id takes 58,892 bytes, too many "
        "for one statement on database 'default', whose max_allowed_packet is "
        "100,000 bytes. Filter by fewer ids, or raise the server's "
        "max_allowed_packet."
    )


def test_a_small_set_reads_no_limit(unread_limits):
    post = PostFactory()
    with assert_queries_per_db({"default": 1, "secondary": 0}):
        assert posts_among(range(post.pk, post.pk + 10_000)) == {post}


def test_an_empty_set_matches_nothing_without_a_query():
    PostFactory()
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert posts_among([]) == set()


# Keys of other types ------------------------------------------------------------


def test_uuid_keys_match_as_the_plain_list():
    targets = UUIDTargetFactory.create_batch(3)
    wanted = [targets[0].pk, targets[2].pk, uuid.uuid4()]
    by_id_set = UUIDTarget.objects.filter(pk__in=IdSet(wanted, UUIDTarget._meta.pk))
    assert set(by_id_set) == {targets[0], targets[2]}


@pytest.mark.vendors(secondary="mysql")
def test_a_relation_to_uuid_keys_filters_by_one_json_parameter():
    references = KeyedReferenceFactory.create_batch(3)
    wanted = [references[1].uuid_id, uuid.uuid4()]
    with assert_queries_per_db({"secondary": 1}) as captured:
        assert list(KeyedReference.objects.filter(uuid__in=wanted)) == [references[1]]
    assert "JSON_TABLE" in captured["secondary"].captured_queries[0]["sql"]


def test_char_keys_compare_with_the_columns_collation():
    CharTargetFactory(code="ABC"), CharTargetFactory(code="Straße")
    CharTargetFactory(code="x")
    wanted = ["abc", "STRASSE", "y"]
    by_id_set = CharTarget.objects.filter(pk__in=IdSet(wanted, CharTarget._meta.pk))
    by_list = CharTarget.objects.filter(pk__in=wanted)
    assert {target.code for target in by_id_set} == {"ABC", "Straße"}
    assert set(by_id_set) == set(by_list)


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
def test_char_keys_compare_with_the_columns_collation_not_the_databases():
    # JSON_TABLE's string columns take the database's default collation: a
    # binary one would tell "abc" from the column's "ABC".
    CharTargetFactory(code="ABC")
    connection = connections["default"]
    database = connection.ops.quote_name(connection.settings_dict["NAME"])
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER DATABASE {database} COLLATE utf8mb4_bin")
        try:
            wanted = IdSet(["abc"], CharTarget._meta.pk)
            assert [t.code for t in CharTarget.objects.filter(pk__in=wanted)] == ["ABC"]
        finally:
            cursor.execute(f"ALTER DATABASE {database} COLLATE utf8mb4_unicode_ci")
