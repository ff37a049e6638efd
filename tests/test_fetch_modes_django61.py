"""Django 6.1 fetch modes on cross relations: FETCH_PEERS and FETCH_RAISE.

Importing ``FETCH_PEERS`` fails on Django 5.2, where fetch modes do not
exist; conftest.py leaves this module out of collection there.
"""

import pytest
from django.core.exceptions import FieldFetchBlocked
from django.db.models import FETCH_PEERS, FETCH_RAISE

from crossfk.testing import assert_queries_per_db
from tests.factories import LinkFactory
from tests.testapp.models import Link

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


@pytest.fixture
def links():
    return LinkFactory.create_batch(3)


def test_fetch_peers_loads_every_target_in_one_query(links):
    fetched = list(Link.objects.fetch_mode(FETCH_PEERS).order_by("pk"))
    with assert_queries_per_db({"default": 1, "secondary": 0}):
        titles = [link.post.title for link in fetched]
    assert titles == [link.post.title for link in links]


def test_fetch_peers_carries_over_to_the_targets(links):
    fetched = list(Link.objects.fetch_mode(FETCH_PEERS).order_by("pk"))
    with assert_queries_per_db({"default": 2, "secondary": 0}):
        names = [link.post.author.name for link in fetched]
    assert names == [link.post.author.name for link in links]


def test_fetch_peers_leaves_none_for_null_ids():
    linked, unlinked = LinkFactory(), LinkFactory(post=None)
    fetched = {link.pk: link for link in Link.objects.fetch_mode(FETCH_PEERS)}
    with assert_queries_per_db({"default": 1, "secondary": 0}):
        assert fetched[linked.pk].post.pk == linked.post_id
        assert fetched[unlinked.pk].post is None


def test_fetch_raise_blocks_access_to_the_target(links):
    link = Link.objects.fetch_mode(FETCH_RAISE).get(pk=links[0].pk)
    with (
        assert_queries_per_db({"default": 0, "secondary": 0}),
        pytest.raises(FieldFetchBlocked, match=r"Fetching of Link\.post blocked"),
    ):
        link.post  # noqa: B018


def test_fetch_raise_allows_prefetched_targets(links):
    fetched = list(
        Link.objects.fetch_mode(FETCH_RAISE).prefetch_cross("post").order_by("pk")
    )
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        titles = [link.post.title for link in fetched]
    assert titles == [link.post.title for link in links]


def test_fetch_raise_allows_the_raw_id(links):
    link = Link.objects.fetch_mode(FETCH_RAISE).get(pk=links[0].pk)
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert link.post_id == links[0].post_id
