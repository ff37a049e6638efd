"""Cross lookups that Django answers with NULLs, ``to_field`` and query values.

Django's answers come from its JOINs: a LEFT OUTER JOIN matches rows that
have no related row at all when the conditions on it hold for NULLs
(``isnull=True``, and ``=None``, which Django reads as ``isnull=True``). Each
expectation below is what the same lookup gives on a ForeignKey inside one
database (``Post.author``, ``Author.posts``), as the twin test shows.
"""

from types import SimpleNamespace

import pytest
from django.db import connections
from django.db.models import Q

from crossfk.testing import assert_queries_per_db
from tests.factories import (
    AuthorFactory,
    LinkFactory,
    PostFactory,
    SlugLinkFactory,
    SlugTargetFactory,
)
from tests.helpers import ids, pks
from tests.testapp.models import Author, Link, Post, SlugLink, SlugTarget

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


@pytest.fixture
def blog():
    """A post without slug, one without links, one with a slug; a lone link."""
    no_slug, no_links, with_slug = (
        PostFactory(slug=None),
        PostFactory(),
        PostFactory(),
    )
    return SimpleNamespace(
        no_slug=no_slug,
        no_links=no_links,
        with_slug=with_slug,
        no_slug_link=LinkFactory(post=no_slug),
        with_slug_link=LinkFactory(post=with_slug),
        lone_link=LinkFactory(post=None),
    )


def test_the_twin_foreign_key_gives_the_answers_expected_below():
    # Author <- Post is Link's shape inside one database: authors play the
    # posts, posts play the links (Post.slug is nullable, like Link's post).
    with_null, without, with_value = AuthorFactory(), AuthorFactory(), AuthorFactory()
    PostFactory(author=with_null, slug=None)
    PostFactory(author=with_value)
    PostFactory(author=None, slug=None)

    assert ids(Author.objects.filter(posts=None)) == pks(without)
    assert ids(Author.objects.exclude(posts=None)) == pks(with_null, with_value)
    assert ids(Author.objects.filter(posts__pk=None)) == pks(without)
    assert ids(Author.objects.filter(posts__slug=None)) == pks(with_null, without)
    assert ids(Author.objects.exclude(posts__slug=None)) == pks(with_value)


# Reverse: targets --------------------------------------------------------------


@pytest.mark.parametrize("lookup", ["links", "links__pk", "links__id", "links__exact"])
def test_reverse_none_finds_targets_without_references(blog, lookup):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Post.objects.filter(**{lookup: None}))
    assert matched == pks(blog.no_links)


def test_reverse_exclude_none_finds_targets_with_references(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Post.objects.exclude(links=None))
    assert matched == pks(blog.no_slug, blog.with_slug)


def test_reverse_isnull_on_a_reference_field_also_finds_targets_without_any(blog):
    # Link.url is never NULL: only the posts without links match, as the
    # NULLs of the LEFT OUTER JOIN do.
    with assert_queries_per_db({"default": 2, "secondary": 2}):
        assert ids(Post.objects.filter(links__url__isnull=True)) == pks(blog.no_links)
        assert ids(Post.objects.filter(links__url=None)) == pks(blog.no_links)


def test_reverse_null_test_beside_another_condition_needs_a_reference(blog):
    # No NULL-extended row has this url: targets without links cannot match.
    url = blog.with_slug_link.url
    matched = ids(Post.objects.filter(links__url=url, links__post__isnull=False))
    assert matched == pks(blog.with_slug)
    assert ids(Post.objects.filter(links__url=url, links__pk=None)) == []


def test_reverse_none_or_a_local_condition(blog):
    matched = ids(Post.objects.filter(Q(links=None) | Q(pk=blog.with_slug.pk)))
    assert matched == pks(blog.no_links, blog.with_slug)


# Forward: references -------------------------------------------------------------


def test_forward_none_on_a_target_field_finds_references_without_a_target(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Link.objects.filter(post__slug=None))
    assert matched == pks(blog.no_slug_link, blog.lone_link)


def test_forward_isnull_on_a_target_field_finds_references_without_a_target(blog):
    matched = ids(Link.objects.filter(post__slug__isnull=True))
    assert matched == pks(blog.no_slug_link, blog.lone_link)


def test_forward_exclude_none_keeps_references_whose_target_has_a_value(blog):
    assert ids(Link.objects.exclude(post__slug=None)) == pks(blog.with_slug_link)


# to_field ----------------------------------------------------------------------


@pytest.fixture
def slugs():
    first, second = SlugTargetFactory(name="A"), SlugTargetFactory(name="B")
    return SimpleNamespace(
        first=first,
        second=second,
        unlinked=SlugTargetFactory(name="C"),
        first_link=SlugLinkFactory(target=first),
        second_link=SlugLinkFactory(target=second),
        lone_link=SlugLinkFactory(target=None),
    )


def test_to_field_in_a_queryset_compares_the_target_field(slugs):
    targets = SlugTarget.objects.filter(name="A")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(SlugLink.objects.filter(target__in=targets))
    assert matched == pks(slugs.first_link)


def test_to_field_in_a_queryset_of_values_compares_them(slugs):
    slugs_of_b = SlugTarget.objects.filter(name="B").values("slug")
    assert ids(SlugLink.objects.filter(target__in=slugs_of_b)) == pks(slugs.second_link)


def test_to_field_pk_lookup_asks_the_target_database(slugs):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(SlugLink.objects.filter(target__pk=slugs.first.pk))
    assert matched == pks(slugs.first_link)


def test_to_field_lookups_on_the_stored_value_stay_local(slugs):
    with assert_queries_per_db({"default": 0, "secondary": 3}):
        assert ids(SlugLink.objects.filter(target=slugs.second)) == pks(
            slugs.second_link
        )
        assert ids(SlugLink.objects.filter(target__slug=slugs.first.slug)) == pks(
            slugs.first_link
        )
        assert ids(SlugLink.objects.filter(target_id=slugs.first.slug)) == pks(
            slugs.first_link
        )


def test_to_field_reverse_lookups(slugs):
    assert ids(SlugTarget.objects.filter(slug_links__id=slugs.second_link.pk)) == pks(
        slugs.second
    )
    assert ids(SlugTarget.objects.filter(slug_links=None)) == pks(slugs.unlinked)
    assert ids(SlugTarget.objects.exclude(slug_links=None)) == pks(
        slugs.first, slugs.second
    )


# Query values ------------------------------------------------------------------


def test_a_bare_query_value_is_read_in_its_own_database(blog):
    query = Post.objects.filter(slug=None).values("pk").query
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Link.objects.filter(post__in=query))
    assert matched == pks(blog.no_slug_link)


def test_a_bare_query_value_of_the_other_side_in_a_reverse_lookup(blog):
    query = Link.objects.filter(pk=blog.with_slug_link.pk).values("pk").query
    assert ids(Post.objects.filter(links__in=query)) == pks(blog.with_slug)


# Values a column cannot hold ---------------------------------------------------


def test_an_id_beyond_the_columns_range_matches_nothing(blog):
    # On PostgreSQL the ids travel as an integer[]: 10**15 would not cast.
    matched = ids(Link.objects.filter(post__in=[blog.no_slug.pk, 10**15]))
    assert matched == pks(blog.no_slug_link)
    assert ids(Link.objects.filter(post__in=[10**15, -(10**15)])) == []


def test_an_id_beyond_the_range_in_a_reverse_lookup_matches_nothing(blog):
    link = blog.with_slug_link
    assert ids(Post.objects.filter(links__in=[link.pk, 10**15])) == pks(blog.with_slug)


def test_the_ids_reach_postgresql_as_an_integer_array(blog):
    with assert_queries_per_db({"secondary": 1}) as captured:
        ids(Link.objects.filter(post__in=[1, 10**15]))
    if connections["secondary"].vendor == "postgresql":
        assert "= ANY(" in captured["secondary"][0]["sql"]
