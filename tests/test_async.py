"""From async code, through Django's own async API.

crossfk adds no async methods: Django's (``acount()``, ``async for``,
``aget()``, ``adelete()``, ``acreate()``) run the synchronous ORM in a
worker thread, and crossfk's lookups, prefetches, checks and cascades with
it. What Django refuses in an event loop, a relation not loaded yet
included, crossfk refuses too.
"""

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import SynchronousOnlyOperation

from crossfk import CrossDBIntegrityError
from crossfk.testing import assert_queries_per_db
from tests.factories import LinkFactory, PostFactory
from tests.helpers import ids
from tests.testapp.models import Link, Post

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


def run(coroutine_function, *args):
    return async_to_sync(coroutine_function)(*args)


def test_a_cross_filter_counts_from_async_code():
    post = PostFactory(title="Django")
    LinkFactory.create_batch(2, post=post)
    LinkFactory(post=PostFactory(title="Flask"))

    async def count():
        return await Link.objects.filter(post__title="Django").acount()

    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert run(count) == 2


def test_async_iteration_prefetches_across_databases():
    links = LinkFactory.create_batch(3)

    async def titles():
        return [
            (link.pk, link.post.title)
            async for link in Link.objects.prefetch_cross("post").order_by("pk")
        ]

    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert run(titles) == [(link.pk, link.post.title) for link in links]


def test_an_unloaded_relation_is_refused_in_the_event_loop_as_django_does():
    link = LinkFactory()

    async def read_post():
        fetched = await Link.objects.aget(pk=link.pk)
        return fetched.post

    with pytest.raises(SynchronousOnlyOperation):
        run(read_post)


def test_acreate_checks_the_target_in_its_database():
    async def create():
        return await Link.objects.acreate(url="https://a.example", post_id=404)

    with pytest.raises(CrossDBIntegrityError, match="no Post with id 404"):
        run(create)
    assert Link.objects.count() == 0


def test_adelete_cascades_into_the_other_database():
    doomed, kept = LinkFactory(), LinkFactory()

    async def delete():
        post = await Post.objects.aget(pk=doomed.post_id)
        return await post.adelete()

    deleted, per_model = run(delete)

    assert per_model == {"testapp.Post": 1, "testapp.Link": 1}
    assert deleted == 2
    assert ids(Link.objects.all()) == [kept.pk]
