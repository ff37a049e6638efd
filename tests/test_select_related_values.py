"""``select_related()`` and ``values()`` across databases: answered as a
``ForeignKey`` answers them, one query per database per level.

The answers are compared with the one-database twin of
``tests.lookuptwins``: the same rows, in the same order and shape.
"""

import pytest
from django.core.exceptions import FieldError
from django.db.models import Count, F

from crossfk.testing import assert_queries_per_db
from tests.factories import (
    AuthorFactory,
    LinkFactory,
    PostFactory,
    factories_for,
)
from tests.lookuptwins.models import CROSS, TWIN
from tests.testapp.models import Link, Post, ProtectedLink

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])

FAMILIES = {"cross": CROSS, "twin": TWIN}


@pytest.fixture
def twins():
    """The same rows in both families: posts with and without an author,
    links with and without a post, and a dangling-free graph back into
    "default" (Note -> Link -> Post -> Author)."""
    for family in FAMILIES.values():
        make = factories_for(family)
        make["Author"](id=1, name="ann")
        make["Post"](id=1, title="first", slug="s1", author_id=1)
        make["Post"](id=2, title="second", slug="s2", author_id=None)
        make["Post"](id=3, title="lonely", slug="s3", author_id=1)
        make["Link"](id=1, url="a", post_id=2)
        make["Link"](id=2, url="b", post_id=None)
        make["Link"](id=3, url="c", post_id=1)
        make["Link"](id=4, url="d", post_id=2)
        make["Note"](id=1, text="n1", link_id=3)
        make["Note"](id=2, text="n2", link_id=2)
        make["Tag"](id=1, name="t1", link_id=3)
        make["Tag"](id=2, name="t2", link_id=1)
    return FAMILIES


def both(twins, build):
    """What ``build(family)`` evaluates to, for the cross family and the twin."""
    return [list(build(family)) for family in (CROSS, TWIN)]


# select_related -------------------------------------------------------------------


def test_select_related_across_fills_the_cache_with_one_query_per_database():
    posts = PostFactory.create_batch(3)
    links = [LinkFactory(post=post) for post in posts] + [LinkFactory(post=None)]

    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = list(Link.objects.select_related("post").order_by("pk"))
        titles = [link.post and link.post.title for link in fetched]

    assert [link.pk for link in fetched] == [link.pk for link in links]
    assert titles == [post.title for post in posts] + [None]


def test_nested_select_related_joins_inside_the_target_database():
    post = PostFactory(author=AuthorFactory(name="ann"))
    LinkFactory(post=post)

    with assert_queries_per_db({"default": 1, "secondary": 1}) as captured:
        [link] = Link.objects.select_related("post__author")
        assert link.post.author.name == "ann"

    assert "JOIN" in captured["default"][0]["sql"]


def test_select_related_mixes_joins_here_with_a_prefetch_there(twins):
    with assert_queries_per_db({"default": 1, "secondary": 1}) as captured:
        fetched = [
            (tag.name, tag.link.url, tag.link.post.title)
            for tag in CROSS.Tag.objects.select_related("link__post").order_by("pk")
        ]

    assert fetched == [
        (tag.name, tag.link.url, tag.link.post.title)
        for tag in TWIN.Tag.objects.select_related("link__post").order_by("pk")
    ]
    assert "JOIN" in captured["secondary"][0]["sql"]


def test_select_related_calls_add_up_on_one_relation():
    LinkFactory(post=PostFactory(author=AuthorFactory(name="ann")))

    queryset = Link.objects.select_related("post").select_related("post__author")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        [link] = queryset
        assert link.post.author.name == "ann"


def test_bare_select_related_follows_a_non_null_cross_relation():
    links = [ProtectedLink.objects.create(post=PostFactory()) for _ in range(3)]

    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = list(ProtectedLink.objects.select_related().order_by("pk"))
        titles = [link.post.title for link in fetched]

    assert titles == [link.post.title for link in links]


def test_bare_select_related_leaves_a_nullable_cross_relation_as_django_does():
    LinkFactory.create_batch(2)

    with assert_queries_per_db({"default": 0, "secondary": 1}):
        list(Link.objects.select_related())


def test_select_related_none_clears_the_cross_paths_too():
    LinkFactory.create_batch(2)

    with assert_queries_per_db({"default": 0, "secondary": 1}):
        list(Link.objects.select_related("post").select_related(None))


def test_select_related_across_leaves_none_for_a_dangling_id():
    LinkFactory(post=None)
    Link._base_manager.update(post_id=987654)  # behind crossfk's back

    with assert_queries_per_db({"default": 1, "secondary": 1}):
        [link] = Link.objects.select_related("post")
    assert link.post_id == 987654
    assert link.__dict__.get("_state").fields_cache == {"post": None}


def test_select_related_across_with_iterator_reads_a_chunk_at_a_time():
    for post in PostFactory.create_batch(5):
        LinkFactory(post=post)

    with assert_queries_per_db({"default": 3, "secondary": 1}):
        titles = [
            link.post.title
            for link in Link.objects.select_related("post").iterator(chunk_size=2)
        ]

    assert sorted(titles) == sorted(Post.objects.values_list("title", flat=True))


def test_select_related_same_rows_as_the_twin(twins):
    cross, twin = both(
        twins,
        lambda family: (
            (note.text, note.link.url, note.link.post and note.link.post.title)
            for note in family.Note.objects.select_related("link__post").order_by("pk")
        ),
    )
    assert cross == twin == [("n1", "c", "first"), ("n2", "b", None)]


# values() and values_list() --------------------------------------------------------


VALUES_CASES = {
    "forward": lambda f: f.Link.objects.order_by("pk").values("url", "post__title"),
    "forward, nested": lambda f: f.Link.objects.order_by("pk").values(
        "post__author__name", "url"
    ),
    "twice across": lambda f: f.Note.objects.order_by("pk").values(
        "text", "link__url", "link__post__title"
    ),
    "list": lambda f: f.Link.objects.order_by("-pk").values_list("post__title", "url"),
    "flat": lambda f: f.Link.objects.order_by("pk").values_list(
        "post__title", flat=True
    ),
    "named": lambda f: f.Link.objects.order_by("pk").values_list(
        "url", "post__slug", named=True
    ),
    "the id itself": lambda f: f.Link.objects.order_by("pk").values(
        "post", "post__id", "post__pk"
    ),
    "filtered across": lambda f: (
        f.Link.objects.filter(post__title="second")
        .order_by("pk")
        .values_list("url", "post__title")
    ),
}


@pytest.mark.parametrize("case", VALUES_CASES.values(), ids=VALUES_CASES)
def test_values_across_give_the_rows_of_a_foreign_key(twins, case):
    cross, twin = both(twins, case)
    assert cross == twin


def test_distinct_values_across_are_distinct_over_what_is_shown(twins):
    # Two links to post 2, one to post 1: both posts by ann or by nobody.
    cross, twin = both(
        twins,
        lambda family: family.Link.objects.values_list(
            "post__author__name", flat=True
        ).distinct(),
    )
    assert sorted(cross, key=str) == sorted(twin, key=str) == [None, "ann"]


def test_reverse_values_repeat_the_row_per_related_row(twins):
    cross, twin = both(
        twins,
        lambda family: family.Post.objects.order_by("pk").values("title", "links__url"),
    )
    # Within a post, a join gives its links in no set order.
    assert sorted(cross, key=repr) == sorted(twin, key=repr)
    assert len(cross) == 4
    assert {"title": "lonely", "links__url": None} in cross


def test_values_across_cost_one_query_per_database_and_level(twins):
    with assert_queries_per_db({"default": 2, "secondary": 1}):
        list(CROSS.Note.objects.values("text", "link__url", "link__post__title"))


def test_values_across_with_iterator_read_a_chunk_at_a_time(twins):
    with assert_queries_per_db({"default": 2, "secondary": 1}):
        rows = list(
            CROSS.Link.objects.order_by("pk")
            .values_list("url", "post__title")
            .iterator(chunk_size=3)
        )
    assert rows == [("a", "second"), ("b", None), ("c", "first"), ("d", "second")]


def test_values_ignore_a_cross_select_related_as_django_does(twins):
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        rows = list(
            CROSS.Link.objects.select_related("post").order_by("pk").values("url")
        )
    assert rows == [{"url": url} for url in "abcd"]


# What a join across databases would need keeps raising --------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Link.objects.order_by("post__title"),
        lambda: Link.objects.annotate(title=F("post__title")),
        lambda: Post.objects.annotate(link_count=Count("links")),
        lambda: Link.objects.aggregate(Count("post__title")),
    ],
    ids=["order_by", "annotate", "annotate reverse", "aggregate"],
)
def test_ordering_annotating_and_aggregating_across_raise_with_a_hint(build):
    with (
        assert_queries_per_db({"default": 0, "secondary": 0}),
        pytest.raises(FieldError, match=r"joins across databases.*values\(\)"),
    ):
        build()


def test_values_across_with_an_unknown_name_raise_at_once_naming_the_target():
    with (
        assert_queries_per_db({"default": 0, "secondary": 0}),
        pytest.raises(FieldError, match=r"Cannot resolve keyword 'nope'.*slug"),
    ):
        Link.objects.values_list("post__nope")
