"""The reverse accessor: ``post.links``, a manager over Link in Link's database."""

import pytest

from crossfk import CrossDBIntegrityError
from crossfk.testing import assert_queries_per_db
from tests.factories import (
    BigTargetFactory,
    KeyedReferenceFactory,
    LinkFactory,
    PostFactory,
    RestrictedLinkFactory,
)
from tests.testapp.models import KeyedReference, Link, Post

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


@pytest.fixture
def post():
    return PostFactory()


def test_all_reads_only_the_referencing_database(post):
    links = LinkFactory.create_batch(3, post=post)
    LinkFactory()  # another post's link
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        assert {link.pk for link in post.links.all()} == {link.pk for link in links}


def test_listed_links_know_their_post_without_a_query(post):
    LinkFactory(post=post)
    (link,) = post.links.all()
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert link.post is post


def test_filter_count_and_exists(post):
    LinkFactory(post=post, url="https://a.example")
    LinkFactory(post=post, url="https://b.example")
    with assert_queries_per_db({"default": 0, "secondary": 3}):
        assert post.links.filter(url="https://a.example").count() == 1
        assert post.links.count() == 2
        assert post.links.exists()
    assert not PostFactory().links.exists()


def test_create_checks_the_target_and_inserts(post):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        link = post.links.create(url="https://a.example")
    assert Link.objects.get(pk=link.pk).post_id == post.pk


def test_add_moves_saved_links_in_one_update(post):
    links = LinkFactory.create_batch(3)
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        post.links.add(*links)
    assert set(Link.objects.filter(post=post).values_list("pk", flat=True)) == {
        link.pk for link in links
    }


def test_add_refuses_another_model(post):
    with pytest.raises(TypeError, match="'Link' instance expected"):
        post.links.add(post)


def test_remove_and_clear_null_the_column(post):
    first, *_ = LinkFactory.create_batch(3, post=post)
    post.links.remove(first)
    assert Link.objects.get(pk=first.pk).post_id is None
    post.links.clear()
    assert Link.objects.filter(post__isnull=True).count() == 3


def test_set_replaces_the_members(post):
    kept, dropped = LinkFactory.create_batch(2, post=post)
    added = LinkFactory()
    post.links.set([kept, added])
    assert set(post.links.values_list("pk", flat=True)) == {kept.pk, added.pk}
    assert Link.objects.get(pk=dropped.pk).post_id is None


def test_remove_and_clear_need_null_true():
    restricted = RestrictedLinkFactory()
    manager = restricted.post.restricted_links
    assert list(manager.all()) == [restricted]
    assert not hasattr(manager, "remove")
    assert not hasattr(manager, "clear")


def test_default_accessor_name_and_hidden_accessor():
    reference = KeyedReferenceFactory()
    assert list(reference.big.keyedreference_set.all()) == [reference]
    assert not any(
        rel.get_accessor_name() == "protectedlink_set"
        for rel in Post._meta.related_objects
    )


def test_unsaved_target_cannot_list_its_links():
    with pytest.raises(ValueError, match="primary key value"):
        Post(title="unsaved").links.all()


def test_dangling_reference_cannot_be_created_through_a_target_that_vanished():
    target = BigTargetFactory()
    target_pk = target.pk
    type(target).objects.filter(pk=target_pk).delete()
    target.pk = target_pk
    with pytest.raises(CrossDBIntegrityError):
        target.keyedreference_set.create()
    assert not KeyedReference.objects.exists()
