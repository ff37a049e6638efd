"""Placement: each model's reads, writes and tables stay in its own database."""

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections, router
from django.db.models import F
from django.test import override_settings

from crossfk.placement import partition_for_model, working_aliases
from crossfk.routers import PartitionRouter
from crossfk.testing import assert_queries_per_db
from tests.factories import LinkFactory, PostFactory, TagFactory
from tests.testapp.models import Link, Post, Tag

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


def table_names(alias):
    with connections[alias].cursor() as cursor:
        return set(connections[alias].introspection.table_names(cursor))


def test_manager_reads_from_its_alias_without_using():
    link = LinkFactory()
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        assert Link.objects.get(pk=link.pk).url == link.url


def test_create_and_save_write_to_the_models_alias():
    post = PostFactory()
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        link = Link.objects.create(url="https://a.example", post=post)
    assert link._state.db == "secondary"
    link.url = "https://b.example"
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        link.save()  # one existence check of the post, one UPDATE
    assert Link.objects.using("secondary").get().url == "https://b.example"


def test_bulk_create_writes_to_the_models_alias():
    post = PostFactory()
    links = [Link(url=f"https://{n}.example", post=post) for n in range(3)]
    Link.objects.bulk_create(links)
    assert Link.objects.using("secondary").count() == 3


def test_instance_delete_uses_the_models_alias():
    link = LinkFactory()
    link.delete()
    assert not Link.objects.using("secondary").exists()


def test_the_manager_keeps_every_queryset_method():
    # QuerySet.alias() too: the manager's own alias must not shadow it.
    link = LinkFactory(url="https://kept.example")

    with assert_queries_per_db({"default": 0, "secondary": 1}):
        found = Link.objects.alias(address=F("url")).get(address=link.url)

    assert found == link


def test_using_still_overrides_the_manager():
    assert Post.objects.using("secondary").db == "secondary"
    assert Post.objects.db == "default"


def test_partition_comes_from_manager_then_model_label_then_app():
    router_ = PartitionRouter()
    assert router_.db_for_read(Link) == "secondary"  # MultiDBManager
    assert router_.db_for_write(Tag) == "secondary"  # CROSSFK_PARTITIONS model
    with override_settings(CROSSFK_PARTITIONS={"testapp": "secondary"}):
        assert partition_for_model(Tag) == "secondary"  # by app
        assert partition_for_model(Post) == "default"  # manager wins
    with override_settings(CROSSFK_PARTITIONS={}):
        assert partition_for_model(Tag) == "default"
    assert partition_for_model(Tag) == "secondary"  # kept, and changed back


def test_the_pinned_databases_follow_the_settings():
    assert "shard_2" not in working_aliases()
    with override_settings(CROSSFK_PARTITIONS={"testapp.Tag": "shard_2"}):
        assert "shard_2" in working_aliases()
    assert "shard_2" not in working_aliases()


def test_model_without_manager_follows_settings_for_writes():
    tag = TagFactory()
    assert tag._state.db == "secondary"
    assert Tag.objects.using("secondary").filter(pk=tag.pk).exists()


def test_tables_exist_only_in_their_own_database():
    default_tables, secondary_tables = table_names("default"), table_names("secondary")
    assert {"testapp_post", "testapp_author"} <= default_tables
    assert not {"testapp_link", "testapp_tag"} & default_tables
    assert {"testapp_link", "testapp_tag"} <= secondary_tables
    assert not {"testapp_post", "testapp_author"} & secondary_tables


def test_allow_relation_refuses_ordinary_relations_across_partitions():
    post, link = PostFactory(), LinkFactory()
    assert router.allow_relation(post, link) is False
    assert router.allow_relation(post, post.author) is True


@pytest.mark.django_db(databases="__all__")
def test_migrate_all_migrates_every_alias(capsys):
    call_command("migrate_all", verbosity=1, interactive=False)
    output = capsys.readouterr().out
    assert "Migrating database 'default'" in output
    assert "Migrating database 'secondary'" in output
    assert output.index("'default'") < output.index("'secondary'")


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_migrate_all_in_parallel_prints_each_databases_output_in_order():
    stdout = StringIO()
    call_command("migrate_all", parallel=4, verbosity=1, stdout=stdout)
    headings = [
        line for line in stdout.getvalue().splitlines() if line.startswith("Migrating")
    ]
    assert headings == [f"Migrating database '{alias}'" for alias in settings.DATABASES]
    sections = stdout.getvalue().split("Migrating database ")[1:]
    assert all("No migrations to apply." in section for section in sections)


def test_migrate_all_refuses_a_parallel_below_one():
    with pytest.raises(CommandError, match=r"--parallel must be at least 1\."):
        call_command("migrate_all", parallel=0)


@override_settings(CROSSFK_PARTITIONS={"blog": "secondary", "shop.Order": "secondary"})
def test_operations_without_a_model_hint_run_in_their_apps_partition():
    # RunPython and RunSQL carry no model: auth's proxy-permission data
    # migration, say, must not run where auth has no tables.
    router = PartitionRouter()
    assert router.allow_migrate("secondary", "blog") is True
    assert router.allow_migrate("default", "blog") is False
    assert router.allow_migrate("default", "auth") is True
    assert router.allow_migrate("secondary", "auth") is False
    # A model-level entry does not move the rest of its app.
    assert router.allow_migrate("default", "shop") is True


def test_auth_and_contenttypes_have_no_tables_in_the_second_database():
    # Every test database is migrated with a proxy model (SlugLinkProxy)
    # whose migration runs before auth's proxy-permission data migration.
    tables = table_names("secondary")
    assert not [name for name in tables if name.startswith(("auth_", "django_content"))]
    assert "testapp_sluglink" in tables
