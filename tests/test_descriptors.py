"""Reading and writing the relation: ``link.post`` and ``link.post = post``."""

import pickle

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, transaction

from crossfk.testing import assert_queries_per_db
from tests.factories import AuthorFactory, LinkFactory, PostFactory
from tests.testapp.models import Author, Link, Post, ProtectedLink, Tag

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


# Assignment, side by side with Tag.link, a ForeignKey inside one database:
# Django accepts an unsaved target and None, and refuses them at save().


def test_an_unsaved_target_is_accepted_and_saved_first_as_with_a_foreign_key():
    post = Post(title="unsaved")
    link = Link(url="https://a.example", post=post)
    twin_link = Link(url="https://b.example")
    tag = Tag(name="twin", link=twin_link)

    post.save()
    link.save()
    twin_link.save()
    tag.save()

    assert Link.objects.get(pk=link.pk).post_id == post.pk
    assert Tag.objects.get(pk=tag.pk).link_id == twin_link.pk


def test_saving_while_the_target_is_unsaved_raises_djangos_error():
    link = Link(url="https://a.example", post=Post(title="unsaved"))
    tag = Tag(name="twin", link=Link(url="https://b.example"))

    with pytest.raises(ValueError) as crossfk_error:
        link.save()
    with pytest.raises(ValueError) as django_error:
        tag.save()

    assert str(crossfk_error.value) == str(django_error.value).replace(
        "'link'", "'post'"
    )
    assert str(crossfk_error.value) == (
        "save() prohibited to prevent data loss due to unsaved related object 'post'."
    )
    assert not Link.objects.exists()


def test_none_on_a_non_null_field_fails_in_full_clean_as_with_a_foreign_key():
    protected = ProtectedLink(post=None)
    tag = Tag(name="twin", link=None)

    with pytest.raises(ValidationError) as crossfk_error:
        protected.full_clean()
    with pytest.raises(ValidationError) as django_error:
        tag.full_clean()

    assert crossfk_error.value.message_dict["post"] == ["This field cannot be null."]
    assert (
        crossfk_error.value.message_dict["post"]
        == (django_error.value.message_dict["link"])
    )


def test_none_on_a_non_null_field_fails_at_save_as_with_a_foreign_key():
    with pytest.raises(IntegrityError), transaction.atomic(using="secondary"):
        ProtectedLink(post=None).save()
    with pytest.raises(IntegrityError), transaction.atomic(using="secondary"):
        Tag(name="twin", link=None).save()
    assert not ProtectedLink.objects.exists()


def test_none_clears_a_nullable_relation():
    link = LinkFactory()
    link.post = None
    link.save()
    assert link.post is None
    assert Link.objects.get(pk=link.pk).post_id is None


def test_an_instance_of_another_model_raises_djangos_value_error():
    author = AuthorFactory()
    with pytest.raises(ValueError) as crossfk_error:
        Link().post = author
    with pytest.raises(ValueError) as django_error:
        Tag().link = author

    assert str(crossfk_error.value) == (
        f'Cannot assign "{author!r}": "Link.post" must be a "Post" instance.'
    )
    assert str(django_error.value) == (
        f'Cannot assign "{author!r}": "Tag.link" must be a "Link" instance.'
    )


def test_build_strategy_of_the_factories_makes_unsaved_targets():
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        link = LinkFactory.build()
    assert link.pk is None
    assert link.post.pk is None
    assert link.post_id is None
    link.post.author.save()
    link.post.save()
    link.save()
    assert Link.objects.get(pk=link.pk).post_id == link.post.pk


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
