"""dumpdata / loaddata of each database, with natural keys across the relation.

Each ``--database`` dumps the models that live there and loads them back;
a link's post is dumped as its id, or as its natural key (the slug) with
``--natural-foreign``, which loaddata looks up in "default" while loading
"secondary".
"""

import io
import json

import pytest
from django.core.management import call_command
from django.core.serializers.base import DeserializationError

from crossfk import partition
from crossfk.testing import assert_queries_per_db
from tests.factories import (
    EventFactory,
    LinkFactory,
    PostFactory,
    SheetFactory,
    TagFactory,
)
from tests.shards.models import Event, Sheet
from tests.testapp.models import Author, Link, Post, Tag

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


def dump(*labels, database, **options):
    """What ``dumpdata`` writes for ``labels`` from ``database``, parsed."""
    output = io.StringIO()
    call_command("dumpdata", *labels, database=database, stdout=output, **options)
    return json.loads(output.getvalue())


def load(objects, database, directory):
    """Run ``loaddata`` of ``objects`` (a parsed fixture) into ``database``."""
    fixture = directory / f"{database}.json"
    fixture.write_text(json.dumps(objects))
    call_command("loaddata", str(fixture), database=database, verbosity=0)


def rows(queryset, *fields):
    return sorted(queryset.values_list(*fields))


def test_dumpdata_of_each_database_holds_the_models_living_there():
    TagFactory()

    default_models = {obj["model"] for obj in dump("testapp", database="default")}
    secondary_models = {obj["model"] for obj in dump("testapp", database="secondary")}

    assert default_models == {"testapp.author", "testapp.post"}
    assert secondary_models == {"testapp.link", "testapp.tag"}


def test_dumpdata_writes_the_post_as_its_id():
    link = LinkFactory()

    (dumped,) = dump("testapp.link", database="secondary")

    assert dumped["pk"] == link.pk
    assert dumped["fields"] == {"url": link.url, "post": link.post_id}


def test_secondary_database_round_trips(tmp_path):
    links = LinkFactory.create_batch(2)
    TagFactory.create_batch(2, link=links[0])
    LinkFactory(post=None)
    saved_links, saved_tags = (
        rows(Link.objects.all(), "pk", "url", "post_id"),
        rows(Tag.objects.all(), "pk", "name", "link_id"),
    )
    fixture = dump("testapp", database="secondary")
    Link.objects.all().delete()

    # Raw saves: loaddata checks no post in "default".
    with assert_queries_per_db({"default": 0}):
        load(fixture, "secondary", tmp_path)

    assert rows(Link.objects.all(), "pk", "url", "post_id") == saved_links
    assert rows(Tag.objects.all(), "pk", "name", "link_id") == saved_tags


def test_default_database_round_trips(tmp_path):
    PostFactory.create_batch(2)
    PostFactory(author=None, slug=None)
    saved_posts = rows(Post.objects.all(), "pk", "title", "slug", "author_id")
    saved_authors = rows(Author.objects.all(), "pk", "name")
    fixture = dump("testapp", database="default")
    Author.objects.all().delete()
    Post.objects.all().delete()

    load(fixture, "default", tmp_path)

    assert rows(Post.objects.all(), "pk", "title", "slug", "author_id") == saved_posts
    assert rows(Author.objects.all(), "pk", "name") == saved_authors


def test_natural_foreign_keys_write_the_posts_slug():
    link = LinkFactory(post=PostFactory(slug="django-tips"))
    without_post = LinkFactory(post=None)

    dumped = dump("testapp.link", database="secondary", natural_foreign=True)

    assert {obj["pk"]: obj["fields"]["post"] for obj in dumped} == {
        link.pk: ["django-tips"],
        without_post.pk: None,
    }


def test_natural_keys_round_trip_both_databases(tmp_path):
    post = PostFactory(slug="django-tips")
    links = LinkFactory.create_batch(2, post=post)
    natural = {"natural_foreign": True, "natural_primary": True}
    default_fixture = dump("testapp.post", database="default", **natural)
    secondary_fixture = dump("testapp.link", database="secondary", **natural)
    Post.objects.all().delete()  # and the links, in "secondary"
    decoy = PostFactory()  # takes an id, so that the post comes back under another

    load(default_fixture, "default", tmp_path)
    with assert_queries_per_db({"default": len(links)}):  # one lookup per link
        load(secondary_fixture, "secondary", tmp_path)

    reloaded = Post.objects.get(slug="django-tips")
    assert reloaded.pk not in {post.pk, decoy.pk}
    assert rows(Link.objects.all(), "url", "post_id") == sorted(
        (link.url, reloaded.pk) for link in links
    )


def test_loaddata_of_a_natural_key_naming_no_post_fails_and_loads_nothing(tmp_path):
    fixture = [
        {
            "model": "testapp.link",
            "pk": 1,
            "fields": {"url": "https://a.example", "post": ["no-such-post"]},
        }
    ]

    with pytest.raises(DeserializationError, match="Post matching query does not"):
        load(fixture, "secondary", tmp_path)

    assert Link.objects.count() == 0


@pytest.mark.parametrize("dump_format", ["xml", "jsonl"])
def test_natural_foreign_keys_load_in_every_format(tmp_path, dump_format):
    post = PostFactory(slug="django-tips")
    link = LinkFactory(post=post)
    output = io.StringIO()
    call_command(
        "dumpdata", "testapp.link", database="secondary", format=dump_format,
        natural_foreign=True, stdout=output,
    )  # fmt: skip
    assert "django-tips" in output.getvalue()
    Post.objects.all().delete()  # and the link, in "secondary"
    reloaded = PostFactory(slug="django-tips")  # under another id
    assert reloaded.pk != post.pk

    fixture = tmp_path / f"links.{dump_format}"
    fixture.write_text(output.getvalue())
    call_command("loaddata", str(fixture), database="secondary", verbosity=0)

    assert rows(Link.objects.all(), "pk", "post_id") == [(link.pk, reloaded.pk)]


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("dump_format", ["json", "xml"])
def test_rows_referring_to_sharded_targets_round_trip(tmp_path, dump_format):
    # Events in "default" refer to accounts a hash places; sheets in a shard
    # to folders beside them, in the same shard.
    EventFactory.create_batch(2)
    with partition("shard_1"):
        SheetFactory.create_batch(2)
    saved = {
        "default": rows(Event.objects.all(), "pk", "account_id", "kind"),
        "shard_1": rows(Sheet.objects.using("shard_1"), "pk", "folder_id", "title"),
    }
    for alias, label in [("default", "shards.event"), ("shard_1", "shards.sheet")]:
        output = io.StringIO()
        call_command(
            "dumpdata", label, database=alias, format=dump_format, stdout=output
        )
        fixture = tmp_path / f"{alias}.{dump_format}"
        fixture.write_text(output.getvalue())
    Event.objects.all().delete()
    Sheet.objects.using("shard_1").all().delete()

    for alias in saved:
        fixture = tmp_path / f"{alias}.{dump_format}"
        call_command("loaddata", str(fixture), database=alias, verbosity=0)

    assert rows(Event.objects.all(), "pk", "account_id", "kind") == saved["default"]
    assert (
        rows(Sheet.objects.using("shard_1"), "pk", "folder_id", "title")
        == saved["shard_1"]
    )
