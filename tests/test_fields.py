"""The field itself: column, constraint, migrations and system checks."""

import pytest
from django.apps import apps
from django.core import checks
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connections, models
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ModelState, ProjectState
from django.db.migrations.writer import MigrationWriter
from django.test import override_settings
from django.test.utils import isolate_apps

from crossfk import CrossDBForeignKey, MultiDBManager
from crossfk.checks import check_partitions, check_router
from crossfk.resolvers import Directory, Hash, SameAsSource, Scatter
from tests.factories import KeyedReferenceFactory
from tests.testapp.models import KeyedReference, Link, Post

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


def column_field_types(table):
    connection = connections["secondary"]
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, table)
    return {
        column.name: connection.introspection.get_field_type(column.type_code, column)
        for column in description
    }


def test_column_is_named_after_the_field_with_id_suffix():
    assert Link._meta.get_field("post").column == "post_id"
    assert "post_id" in column_field_types("testapp_link")


@pytest.mark.parametrize(
    "column, expected_types",
    [
        ("post_id", {"IntegerField"}),
        ("big_id", {"BigIntegerField"}),
        # SQLite stores UUIDs as char(32), PostgreSQL as uuid.
        ("uuid_id", {"UUIDField", "CharField"}),
        ("char_id", {"CharField"}),
    ],
)
def test_column_type_follows_the_target_primary_key(column, expected_types):
    table = "testapp_link" if column == "post_id" else "testapp_keyedreference"
    assert column_field_types(table)[column] in expected_types


def test_each_key_type_round_trips_through_the_other_database():
    reference = KeyedReferenceFactory()
    reloaded = KeyedReference.objects.get(pk=reference.pk)
    assert (reloaded.big_id, reloaded.uuid_id, reloaded.char_id) == (
        reference.big.pk,
        reference.uuid.pk,
        reference.char.pk,
    )
    assert reloaded.uuid == reference.uuid
    assert reloaded.char == reference.char
    assert reloaded.big == reference.big


def test_no_database_constraint_but_an_index():
    connection = connections["secondary"]
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "testapp_link")
    on_post_id = [c for c in constraints.values() if c["columns"] == ["post_id"]]
    assert on_post_id, "expected an index on post_id"
    assert not any(c["foreign_key"] for c in on_post_id)


def test_db_constraint_is_refused():
    with pytest.raises(TypeError, match="db_constraint"):
        CrossDBForeignKey(Post, models.CASCADE, db_constraint=True)


def test_deconstruct_gives_the_users_arguments_back():
    field = CrossDBForeignKey(
        Post, models.SET_NULL, null=True, using="default", enforce=False
    )
    field.set_attributes_from_name("post")
    name, path, args, kwargs = field.deconstruct()
    assert path == "crossfk.fields.CrossDBForeignKey"
    assert kwargs == {
        "on_delete": models.SET_NULL,
        "to": "testapp.post",
        "null": True,
        "using": "default",
        "enforce": False,
    }
    rebuilt = CrossDBForeignKey(*args, **kwargs)
    rebuilt.set_attributes_from_name(name)
    assert rebuilt.deconstruct() == (name, path, args, kwargs)


# makemigrations reads the migration history of every database.
@pytest.mark.django_db(databases="__all__")
def test_makemigrations_finds_no_changes():
    # Exits with SystemExit(1) if the committed migration is out of date.
    call_command("makemigrations", "testapp", check=True, dry_run=True, verbosity=0)


def test_new_relation_produces_a_migration_that_names_the_field():
    before = ProjectState.from_apps(apps)
    after = before.clone()
    after.add_model(
        ModelState(
            "testapp",
            "Bookmark",
            [
                ("id", models.AutoField(primary_key=True)),
                ("post", CrossDBForeignKey("testapp.Post", models.CASCADE)),
            ],
        )
    )
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    changes = MigrationAutodetector(before, after).changes(graph)
    (migration,) = changes["testapp"]
    (operation,) = migration.operations
    assert operation.name == "Bookmark"
    source = MigrationWriter(migration).as_string()
    assert (
        "crossfk.fields.CrossDBForeignKey("
        "on_delete=django.db.models.deletion.CASCADE, to='testapp.post')" in source
    )


class IsolatedModel(models.Model):
    """Base for throwaway models declared inside isolate_apps()."""

    class Meta:
        abstract = True
        app_label = "testapp"


def check_ids(model):
    return sorted(message.id for message in model.check())


@isolate_apps("tests.testapp")
def test_check_unresolvable_target():
    class Orphan(IsolatedModel):
        target = CrossDBForeignKey("testapp.Missing", models.CASCADE)

    assert check_ids(Orphan) == ["crossfk.E001"]


@isolate_apps("tests.testapp")
def test_check_unknown_using_alias():
    class Target(IsolatedModel):
        objects = MultiDBManager("default")

    class Misrouted(IsolatedModel):
        post = CrossDBForeignKey(Target, models.CASCADE, using="nowhere")
        objects = MultiDBManager("secondary")

    (message,) = Misrouted.check()
    assert message.id == "crossfk.E002"
    assert "'nowhere'" in message.msg


@isolate_apps("tests.testapp")
def test_check_set_null_needs_null():
    class Target(IsolatedModel):
        objects = MultiDBManager("default")

    class Nulling(IsolatedModel):
        post = CrossDBForeignKey(Target, models.SET_NULL)
        objects = MultiDBManager("secondary")

    assert check_ids(Nulling) == ["crossfk.E003"]


@isolate_apps("tests.testapp")
def test_check_set_default_needs_a_default():
    class Target(IsolatedModel):
        objects = MultiDBManager("default")

    class Defaulting(IsolatedModel):
        post = CrossDBForeignKey(Target, models.SET_DEFAULT)
        objects = MultiDBManager("secondary")

    assert check_ids(Defaulting) == ["crossfk.E004"]


@isolate_apps("tests.testapp")
def test_check_accessor_clash():
    class Target(IsolatedModel):
        objects = MultiDBManager("default")

    class Twice(IsolatedModel):
        first = CrossDBForeignKey(Target, models.CASCADE, related_name="twice")
        second = CrossDBForeignKey(Target, models.CASCADE, related_name="twice")
        objects = MultiDBManager("secondary")

    assert set(check_ids(Twice)) == {"crossfk.E005", "crossfk.E006"}


@isolate_apps("tests.testapp")
def test_check_warns_when_both_ends_share_a_database():
    class Target(IsolatedModel):
        objects = MultiDBManager("default")

    class Neighbour(IsolatedModel):
        post = CrossDBForeignKey(Target, models.CASCADE)
        objects = MultiDBManager("default")

    (message,) = Neighbour.check()
    assert message.id == "crossfk.W001"
    assert "ForeignKey" in message.hint


def test_check_refuses_to_run_without_the_router():
    assert check_router() == []
    with override_settings(DATABASE_ROUTERS=[]):
        (message,) = check_router()
    assert isinstance(message, checks.Error)
    assert message.id == "crossfk.E008"
    assert "PartitionRouter" in message.hint


def test_router_check_runs_with_djangos_checks():
    with override_settings(DATABASE_ROUTERS=[]):
        ids = [message.id for message in run_checks()]
    assert "crossfk.E008" in ids
    assert "crossfk.E008" not in [message.id for message in run_checks()]


@isolate_apps("tests.testapp")
def test_check_refuses_a_manager_alias_missing_from_databases():
    class Misplaced(IsolatedModel):
        objects = MultiDBManager("nope")

    errors = Misplaced.check()
    assert [(m.id, m.msg) for m in errors] == [
        (
            "crossfk.E009",
            "testapp.Misplaced.objects is MultiDBManager('nope'), which is not "
            "a key of DATABASES.",
        )
    ]
    assert errors[0].hint == (
        "Use one of: 'default', 'secondary', 'tenant_0', 'tenant_1', 'tenant_2', "
        "'tenant_3', 'tenant_4', 'tenant_5', 'tenant_6', 'tenant_7', 'shard_0', "
        "'shard_1', 'shard_2', 'shard_3'."
    )


@isolate_apps("tests.testapp")
def test_check_names_each_alias_of_a_list_missing_from_databases():
    class Misplaced(IsolatedModel):
        objects = MultiDBManager(["tenant_0", "nope", "tenant_1", "gone"])

    assert [(m.id, m.msg) for m in Misplaced.check()] == [
        (
            "crossfk.E009",
            "testapp.Misplaced.objects is MultiDBManager(['tenant_0', 'nope', "
            "'tenant_1', 'gone']), and 'nope', 'gone' are not keys of DATABASES.",
        )
    ]


def test_check_refuses_a_partition_alias_missing_from_databases():
    with override_settings(CROSSFK_PARTITIONS={"testapp.Tag": "secundary"}):
        (message,) = check_partitions()
    assert isinstance(message, checks.Error)
    assert (message.id, message.msg) == (
        "crossfk.E010",
        "CROSSFK_PARTITIONS['testapp.Tag'] is 'secundary', which is not a key "
        "of DATABASES.",
    )


@pytest.mark.parametrize("label", ["testap", "testapp.Tags", "nope.Tag"])
def test_check_warns_of_a_partition_label_that_places_nothing(label):
    with override_settings(CROSSFK_PARTITIONS={label: "secondary"}):
        (message,) = check_partitions()
    assert isinstance(message, checks.Warning)
    assert message.id == "crossfk.W004"
    assert repr(label) in message.msg


def test_the_test_settings_pass_the_partition_checks():
    assert check_partitions() == []


@isolate_apps("tests.testapp")
def test_check_refuses_a_target_placed_in_several_databases_by_a_list():
    class Target(IsolatedModel):
        objects = MultiDBManager(["tenant_0", "tenant_1"])

    class Referencing(IsolatedModel):
        target = CrossDBForeignKey(Target, models.CASCADE)
        objects = MultiDBManager("default")

    class Pinned(IsolatedModel):
        target = CrossDBForeignKey(
            Target, models.CASCADE, using="tenant_0", related_name="+"
        )
        objects = MultiDBManager("default")

    (message,) = Referencing.check()
    assert (message.id, message.msg) == (
        "crossfk.E011",
        "Referencing.target refers to testapp.Target, which lives in 2 "
        "databases ('tenant_0', 'tenant_1') placed by a list: nothing says "
        "which one holds a given row.",
    )
    assert "SameAsSource(...)" in message.hint
    assert Pinned.check() == []


@isolate_apps("tests.testapp")
def test_check_refuses_same_as_source_where_the_target_does_not_live():
    class Target(IsolatedModel):
        objects = MultiDBManager(SameAsSource(["shard_0", "shard_1"]))

    class Inside(IsolatedModel):
        target = CrossDBForeignKey(Target, models.CASCADE, related_name="+")
        objects = MultiDBManager(["shard_1", "shard_0"])

    class Outside(IsolatedModel):
        target = CrossDBForeignKey(Target, models.CASCADE, related_name="+")
        objects = MultiDBManager(["shard_0", "shard_2", "default"])

    assert Inside.check() == []
    (message,) = Outside.check()
    assert (message.id, message.msg) == (
        "crossfk.E012",
        "Outside.target refers to testapp.Target, placed by "
        "SameAsSource(['shard_0', 'shard_1']), which finds each row's target in "
        "that row's own database; but testapp.Outside also lives in 'shard_2', "
        "'default', where testapp.Target does not.",
    )


@isolate_apps("tests.testapp")
def test_check_accepts_a_target_placed_by_a_resolver_from_any_database():
    class Target(IsolatedModel):
        objects = MultiDBManager(Hash(["shard_0", "shard_1"]))

    class Referencing(IsolatedModel):
        target = CrossDBForeignKey(Target, models.CASCADE, related_name="+")
        objects = MultiDBManager(["default", "tenant_3"])

    assert Referencing.check() == []


@isolate_apps("tests.testapp")
def test_check_refuses_a_to_field_a_resolver_does_not_place_by():
    class Target(IsolatedModel):
        code = models.CharField(max_length=10, unique=True)
        objects = MultiDBManager(Hash(["shard_0", "shard_1"]))

    class ByCode(IsolatedModel):
        target = CrossDBForeignKey(
            Target, models.CASCADE, to_field="code", related_name="+"
        )
        objects = MultiDBManager("default")

    class ByPk(IsolatedModel):
        target = CrossDBForeignKey(Target, models.CASCADE, related_name="+")
        objects = MultiDBManager("default")

    (message,) = ByCode.check()
    assert (message.id, message.msg) == (
        "crossfk.E013",
        "ByCode.target refers to testapp.Target by code, but "
        "Hash(['shard_0', 'shard_1']) places testapp.Target rows by primary "
        "key: it would be asked where code values live.",
    )
    assert ByPk.check() == []


@isolate_apps("tests.testapp")
def test_check_accepts_a_to_field_any_alias_or_a_placing_directory_is_asked_for():
    class Placing(IsolatedModel):
        key = models.CharField(max_length=10)
        alias = models.CharField(max_length=10)
        objects = MultiDBManager("default")

    class Scattered(IsolatedModel):
        code = models.CharField(max_length=10, unique=True)
        objects = MultiDBManager(Scatter(["shard_0", "shard_1"]))

    class Listed(IsolatedModel):
        code = models.CharField(max_length=10, unique=True)
        objects = MultiDBManager(
            Directory(Placing, ["shard_0", "shard_1"], place_new=lambda row: "shard_0")
        )

    class Referencing(IsolatedModel):
        scattered = CrossDBForeignKey(
            Scattered, models.CASCADE, to_field="code", related_name="+"
        )
        listed = CrossDBForeignKey(
            Listed, models.CASCADE, to_field="code", related_name="+"
        )
        objects = MultiDBManager("default")

    assert Referencing.check() == []


def test_the_test_apps_pass_the_placement_checks():
    ids = {message.id for message in run_checks()}
    assert not ids & {"crossfk.E011", "crossfk.E012", "crossfk.E013"}


def database_cascade():
    """Django 6.1's DB_CASCADE, or a stand-in of the same name on 5.2."""

    def DB_CASCADE(collector, field, sub_objs, using):
        raise AssertionError("never called")

    return getattr(models, "DB_CASCADE", DB_CASCADE)


@isolate_apps("tests.testapp")
def test_check_database_level_actions_are_refused():
    class Target(IsolatedModel):
        objects = MultiDBManager("default")

    class Cascading(IsolatedModel):
        post = CrossDBForeignKey(Target, database_cascade())
        objects = MultiDBManager("secondary")

    (message,) = Cascading.check()
    assert message.id == "crossfk.E007"
    assert "Use CASCADE" in message.hint
