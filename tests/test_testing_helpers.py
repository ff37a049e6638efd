"""crossfk.testing and crossfk.factories, the helpers users test with."""

import pytest

from crossfk.testing import assert_queries_per_db, capture_queries_per_db
from tests.factories import LinkFactory, PostFactory
from tests.testapp.models import Link, Post

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


def test_passes_when_every_named_alias_matches():
    with assert_queries_per_db({"default": 1, "secondary": 0}) as captured:
        Post.objects.count()
    assert "testapp_post" in captured["default"].captured_queries[0]["sql"]


def test_fails_with_the_captured_sql_of_the_alias_that_missed():
    expected = {"default": 0, "secondary": 0}
    with pytest.raises(AssertionError) as caught, assert_queries_per_db(expected):
        Link.objects.count()
    message = str(caught.value)
    assert "1 queries on 'secondary', expected 0" in message
    assert "testapp_link" in message
    assert "'default'" not in message


def test_aliases_not_named_are_not_checked():
    with assert_queries_per_db({"secondary": 0}):
        Post.objects.count()


def test_factory_writes_each_model_to_its_own_database():
    link = LinkFactory()
    assert link._state.db == "secondary"
    assert link.post._state.db == "default"
    assert Post.objects.using("default").filter(pk=link.post_id).exists()
    assert Link.objects.using("secondary").filter(pk=link.pk).exists()


def test_subfactory_across_databases_with_a_given_target():
    post = PostFactory()
    links = LinkFactory.create_batch(2, post=post)
    assert {link.post_id for link in links} == {post.pk}
    assert Post.objects.count() == 1


def test_capture_queries_per_db_counts_every_alias_by_default():
    PostFactory()
    with capture_queries_per_db() as captured:
        list(Post.objects.all())
        list(Post.objects.all())
        list(Link.objects.all())
    assert {alias: len(context) for alias, context in captured.items()} == {
        "default": 2,
        "secondary": 1,
    }
