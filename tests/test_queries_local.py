"""Lookups answered by the local id column: no query to the other database."""

import pytest
from django.db.models import Q

from crossfk.testing import assert_queries_per_db
from tests.factories import CharTargetFactory, KeyedReferenceFactory, LinkFactory
from tests.helpers import ids
from tests.testapp.models import KeyedReference, Link

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


@pytest.fixture
def links():
    return [*LinkFactory.create_batch(3), LinkFactory(post=None)]


@pytest.mark.parametrize(
    "lookup",
    [
        lambda post: {"post": post},
        lambda post: {"post_id": post.pk},
        lambda post: {"post__pk": post.pk},
        lambda post: {"post__id": post.pk},
        lambda post: {"post__in": [post]},
        lambda post: {"post__id__in": [post.pk]},
    ],
)
def test_lookup_on_the_id_column_costs_no_target_query(links, lookup):
    post = links[0].post
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        assert ids(Link.objects.filter(**lookup(post))) == [links[0].pk]


def test_isnull(links):
    assert ids(Link.objects.filter(post__isnull=True)) == [links[3].pk]
    assert ids(Link.objects.filter(post__isnull=False)) == ids(
        Link.objects.exclude(pk=links[3].pk)
    )


def test_exclude_on_the_relation_keeps_null_rows(links):
    excluded = Link.objects.exclude(post=links[0].post)
    assert ids(excluded) == sorted(link.pk for link in links[1:])


def test_q_objects_combine_local_lookups(links):
    queryset = Link.objects.filter(Q(post=links[0].post) | Q(post__isnull=True))
    assert ids(queryset) == [links[0].pk, links[3].pk]


def test_in_with_more_ids_than_sqlite_allows_variables():
    # 40,000 ids: over SQLite's 32,766-variable limit when spelled one by one.
    link = LinkFactory()
    wanted = [*range(10**6, 10**6 + 40_000), link.post_id]
    with assert_queries_per_db({"secondary": 1}):
        assert ids(Link.objects.filter(post__in=wanted)) == [link.pk]


def test_empty_in_matches_nothing_without_a_query(links):
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert list(Link.objects.filter(post__in=[])) == []


def test_ids_reach_sql_as_parameters():
    hostile = "'); DELETE FROM x--"  # fits max_length=20
    reference = KeyedReferenceFactory(char=CharTargetFactory(code=hostile))
    other = KeyedReferenceFactory()
    matched = KeyedReference.objects.filter(char__in=[hostile, "' OR '1'='1"])
    assert ids(matched) == [reference.pk]
    assert ids(KeyedReference.objects.all()) == [reference.pk, other.pk]
