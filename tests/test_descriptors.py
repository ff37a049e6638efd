"""Reading and writing the relation: ``link.post`` and ``link.post = post``."""

import pickle

import pytest
from django.db import connections

from crossfk.testing import assert_queries_per_db
from tests.factories import AuthorFactory, LinkFactory, PostFactory
from tests.testapp.models import Author, Link, Post, ProtectedLink

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


def test_forward_access_reads_the_target_database_once_then_caches():
    link = Link.objects.get(pk=LinkFactory().pk)
    with assert_queries_per_db({"default": 1, "secondary": 0}):
        post = link.post
        assert link.post is post
    assert post._state.db == "default"
    assert post.pk == link.post_id


def test_raw_id_costs_no_query():
    link = Link.objects.get(pk=LinkFactory().pk)
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert isinstance(link.post_id, int)


def test_constructor_and_create_accept_a_saved_target():
    post = PostFactory()
    link = Link(url="https://a.example", post=post)
    assert link.post_id == post.pk
    created = Link.objects.create(url="https://b.example", post=post)
    assert Link.objects.get(pk=created.pk).post_id == post.pk


def test_target_from_another_database_is_accepted():
    post = PostFactory()
    copy = Post.objects.using("default").get(pk=post.pk)
    copy._state.db = "secondary"  # as if read through another alias
    link = LinkFactory(post=copy)
    assert link.post_id == post.pk


def test_unsaved_target_is_refused_with_value_error():
    link = LinkFactory()
    with pytest.raises(ValueError, match=r'"Link.post" needs a saved Post.*default'):
        link.post = Post(title="unsaved")
    assert Link.objects.get(pk=link.pk).post_id == link.post_id


def test_instance_of_another_model_is_refused_with_type_error():
    link = LinkFactory()
    with pytest.raises(TypeError, match=r'"Link.post" must be a "Post" instance'):
        link.post = AuthorFactory()


def test_none_needs_null_true():
    protected = ProtectedLink(post=PostFactory())
    with pytest.raises(ValueError, match=r'"ProtectedLink.post" to None'):
        protected.post = None
    link = LinkFactory()
    link.post = None
    link.save()
    assert Link.objects.get(pk=link.pk).post_id is None


def test_dangling_id_raises_related_object_does_not_exist():
    link = LinkFactory()
    with connections["default"].cursor() as cursor:  # behind crossfk's back
        cursor.execute("DELETE FROM testapp_post WHERE id = %s", [link.post_id])
    link = Link.objects.get(pk=link.pk)
    with pytest.raises(Link.post.RelatedObjectDoesNotExist) as caught:
        link.post  # noqa: B018
    message = str(caught.value)
    assert f"Post with id {link.post_id}" in message
    assert "Link.post" in message
    assert "database 'default'" in message
    assert isinstance(caught.value, Post.DoesNotExist)
    assert isinstance(caught.value, AttributeError)
    assert getattr(link, "post", "fallback") == "fallback"


def test_refresh_from_db_drops_a_stale_cached_target():
    link = LinkFactory()
    other = PostFactory()
    Link.objects.filter(pk=link.pk).update(post=other)
    link.refresh_from_db()
    assert link.post == other


def test_pickled_instance_keeps_its_cached_target():
    link = Link.objects.get(pk=LinkFactory().pk)
    title = link.post.title
    restored = pickle.loads(pickle.dumps(link))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert restored.post.title == title


def test_ordinary_relation_on_the_target_side_still_works():
    link = LinkFactory()
    author = Link.objects.get(pk=link.pk).post.author
    assert isinstance(author, Author)
    assert author._state.db == "default"
