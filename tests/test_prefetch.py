"""Prefetching across databases: one query per database and level, never per row.

Covers the forward (``Link.post``) and reverse (``Post.links``) directions
through ``prefetch_cross()``, Django's ``prefetch_related()`` and ``Prefetch``
with custom querysets; nesting with ordinary foreign keys
on either side; instances already in memory; dangling and NULL ids; 10^4 rows;
``iterator(chunk_size=...)``; big integer, UUID and char primary keys.
"""

from types import SimpleNamespace

import pytest
from django.db import connections
from django.db.models import Prefetch, prefetch_related_objects

import crossfk.query
from crossfk.descriptors import prefetch_reverse_into
from crossfk.query import prefetch_direct
from crossfk.testing import assert_queries_per_db
from tests.factories import (
    AuthorFactory,
    KeyedReferenceFactory,
    LinkFactory,
    PostFactory,
    ProtectedLinkFactory,
    TagFactory,
)
from tests.testapp.models import (
    Author,
    KeyedReference,
    Link,
    Post,
    ProtectedLink,
    Tag,
)

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


def bulk_links(posts):
    """One saved link per post, in one insert."""
    return Link.objects.bulk_create([LinkFactory.build(post=post) for post in posts])


def delete_behind_crossfks_back(post):
    """Remove ``post``'s row without crossfk's cascade, leaving dangling ids."""
    connection = connections["default"]
    table = connection.ops.quote_name(Post._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [post.pk])


# Forward: Link.post --------------------------------------------------------


@pytest.fixture
def links():
    return LinkFactory.create_batch(3)


@pytest.mark.parametrize(
    "prefetch",
    [
        lambda queryset: queryset.prefetch_cross("post"),
        lambda queryset: queryset.prefetch_related("post"),
        lambda queryset: queryset.prefetch_related(Prefetch("post")),
        lambda queryset: queryset.prefetch_cross(Prefetch("post")),
    ],
    ids=["prefetch_cross", "prefetch_related", "Prefetch", "prefetch_cross(Prefetch)"],
)
def test_forward_prefetch_costs_one_query_per_database(links, prefetch):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = list(prefetch(Link.objects.order_by("pk")))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        titles = [link.post.title for link in fetched]
    assert titles == [link.post.title for link in links]
    assert [link.post.pk for link in fetched] == [link.post_id for link in links]


def test_forward_prefetch_reads_the_target_database(links):
    (link, *_) = Link.objects.prefetch_cross("post")
    assert link.post._state.db == "default"


def test_forward_custom_queryset_leaves_filtered_out_targets_none():
    kept = LinkFactory(post__title="Kept")
    dropped = LinkFactory(post__title="Dropped")
    posts = Post.objects.filter(title="Kept")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = Link.objects.prefetch_cross(Prefetch("post", queryset=posts))
        by_pk = {link.pk: link for link in fetched}
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert by_pk[kept.pk].post.title == "Kept"
        assert by_pk[dropped.pk].post is None


def test_forward_custom_queryset_with_to_attr():
    kept = LinkFactory(post__title="Kept")
    dropped = LinkFactory(post__title="Dropped")
    posts = Post.objects.filter(title="Kept")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = Link.objects.prefetch_cross(
            Prefetch("post", queryset=posts, to_attr="kept_post")
        )
        by_pk = {link.pk: link for link in fetched}
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert by_pk[kept.pk].kept_post.pk == kept.post_id
        assert by_pk[dropped.pk].kept_post is None


# Reverse: Post.links -------------------------------------------------------


@pytest.fixture
def posts():
    first, second, lonely = PostFactory.create_batch(3)
    LinkFactory.create_batch(2, post=first, url="https://keep.example/a")
    LinkFactory(post=second, url="https://drop.example/b")
    return first, second, lonely


def link_ids(links):
    return sorted(link.pk for link in links)


def test_reverse_prefetch_costs_one_query_per_database(posts):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = list(Post.objects.prefetch_cross("links").order_by("pk"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        prefetched = [link_ids(post.links.all()) for post in fetched]
    assert prefetched == [link_ids(Link.objects.filter(post=post)) for post in posts]
    assert [len(links) for links in prefetched] == [2, 1, 0]


def test_reverse_prefetched_links_know_their_post(posts):
    (first, *_) = Post.objects.prefetch_cross("links").order_by("pk")
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert all(link.post is first for link in first.links.all())


def test_reverse_custom_queryset_with_to_attr(posts):
    matching = Link.objects.filter(url__contains="keep")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = list(
            Post.objects.prefetch_cross(
                Prefetch("links", queryset=matching, to_attr="matching_links")
            ).order_by("pk")
        )
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        counts = [len(post.matching_links) for post in fetched]
        urls = {link.url for post in fetched for link in post.matching_links}
    assert counts == [2, 0, 0]
    assert urls == {"https://keep.example/a"}


def test_reverse_then_forward_back_costs_no_further_query(posts):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = list(Post.objects.prefetch_cross("links__post"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert all(link.post is post for post in fetched for link in post.links.all())


# Nested, mixed with ordinary foreign keys ----------------------------------


def test_nested_cross_then_ordinary_forward():
    links = LinkFactory.create_batch(3)
    with assert_queries_per_db({"default": 2, "secondary": 1}):
        fetched = list(Link.objects.prefetch_cross("post__author").order_by("pk"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        names = [link.post.author.name for link in fetched]
    assert names == [link.post.author.name for link in links]


def test_nested_cross_then_ordinary_reverse():
    post = PostFactory()
    tags = TagFactory.create_batch(2, link__post=post)
    PostFactory()  # no links
    with assert_queries_per_db({"default": 1, "secondary": 2}):
        fetched = list(Post.objects.prefetch_cross("links__tags").order_by("pk"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        names = [
            sorted(tag.name for link in post.links.all() for tag in link.tags.all())
            for post in fetched
        ]
    assert names == [sorted(tag.name for tag in tags), []]


def test_nested_ordinary_then_cross():
    author = AuthorFactory()
    first, second = PostFactory.create_batch(2, author=author)
    links = LinkFactory.create_batch(2, post=first)
    with assert_queries_per_db({"default": 2, "secondary": 1}):
        (fetched,) = Author.objects.prefetch_cross("posts__links")
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        by_post = {post.pk: link_ids(post.links.all()) for post in fetched.posts.all()}
    assert by_post == {first.pk: link_ids(links), second.pk: []}


# Instances already in memory -------------------------------------------------


def test_djangos_prefetch_related_objects_on_instances_in_memory(links):
    fetched = list(Link.objects.order_by("pk"))
    with assert_queries_per_db({"default": 1, "secondary": 0}):
        prefetch_related_objects(fetched, "post")
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        titles = [link.post.title for link in fetched]
    assert titles == [link.post.title for link in links]


def test_prefetch_related_objects_on_instances_accepts_a_prefetch(links):
    fetched = list(Link.objects.order_by("pk"))
    posts = Post.objects.filter(pk=links[0].post_id)
    with assert_queries_per_db({"default": 1, "secondary": 0}):
        prefetch_related_objects(
            fetched, Prefetch("post", queryset=posts, to_attr="first")
        )
    assert [link.first and link.first.pk for link in fetched] == [
        links[0].post_id,
        None,
        None,
    ]


# Dangling and NULL ids -------------------------------------------------------


def test_forward_dangling_id_leaves_none_and_the_rest_intact(links):
    dangling, *intact = links
    delete_behind_crossfks_back(dangling.post)
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        by_pk = {link.pk: link for link in Link.objects.prefetch_cross("post")}
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert by_pk[dangling.pk].post is None
        assert [by_pk[link.pk].post.title for link in intact] == [
            link.post.title for link in intact
        ]


def test_forward_dangling_id_on_a_non_null_field_is_named_after_prefetch():
    reference = ProtectedLinkFactory()
    delete_behind_crossfks_back(reference.post)
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        (fetched,) = ProtectedLink.objects.prefetch_cross("post")
    message = (
        rf"Post with id {reference.post_id}, which does not exist in database "
        rf"'default'"
    )
    with (
        assert_queries_per_db({"default": 0, "secondary": 0}),
        pytest.raises(ProtectedLink.post.RelatedObjectDoesNotExist, match=message),
    ):
        fetched.post  # noqa: B018


def test_reverse_skips_dangling_links_and_keeps_the_others(posts):
    first, second, lonely = posts
    dangling = LinkFactory()
    delete_behind_crossfks_back(dangling.post)
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = list(Post.objects.prefetch_cross("links").order_by("pk"))
    assert [post.pk for post in fetched] == [first.pk, second.pk, lonely.pk]
    assert [link_ids(post.links.all()) for post in fetched] == [
        link_ids(Link.objects.filter(post=first)),
        link_ids(Link.objects.filter(post=second)),
        [],
    ]


def test_null_ids_prefetch_to_none():
    linked = LinkFactory()
    unlinked = LinkFactory(post=None)
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        by_pk = {link.pk: link for link in Link.objects.prefetch_cross("post")}
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert by_pk[linked.pk].post.pk == linked.post_id
        assert by_pk[unlinked.pk].post is None


def test_only_null_ids_cost_no_target_query():
    LinkFactory.create_batch(2, post=None)
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        fetched = list(Link.objects.prefetch_cross("post"))
    assert [link.post for link in fetched] == [None, None]


# Cost does not grow with rows ------------------------------------------------


def test_forward_prefetch_of_ten_thousand_distinct_targets_is_one_query():
    # Django 5.2's own forward prefetch spells one parameter per id and fails
    # here on SQLite with "Expression tree is too large".
    posts = Post.objects.bulk_create(PostFactory.build_batch(10_000, author=None))
    bulk_links(posts)
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = list(Link.objects.prefetch_cross("post"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        pairs = {(link.post_id, link.post.pk, link.post.title) for link in fetched}
    assert pairs == {(post.pk, post.pk, post.title) for post in posts}


def test_reverse_prefetch_of_ten_thousand_sources_is_one_query():
    posts = Post.objects.bulk_create(PostFactory.build_batch(10_000, author=None))
    bulk_links(posts)
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        fetched = list(Post.objects.prefetch_cross("links"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        pairs = {
            (post.pk, link.post_id) for post in fetched for link in post.links.all()
        }
    assert pairs == {(post.pk, post.pk) for post in posts}


def test_iterator_prefetches_one_query_per_chunk():
    posts = Post.objects.bulk_create(PostFactory.build_batch(250, author=None))
    bulk_links(posts)
    titles = {post.pk: post.title for post in posts}
    # The links are one SELECT read in chunks of 100; each of the 3 chunks
    # then prefetches its own posts.
    with assert_queries_per_db({"default": 3, "secondary": 1}):
        fetched = [
            (link.post_id, link.post.title)
            for link in Link.objects.prefetch_cross("post").iterator(chunk_size=100)
        ]
    assert len(fetched) == 250
    assert dict(fetched) == titles


# Primary keys other than integers ------------------------------------------


def test_big_uuid_and_char_targets_prefetch():
    references = KeyedReferenceFactory.create_batch(3)
    with assert_queries_per_db({"default": 3, "secondary": 1}):
        fetched = list(
            KeyedReference.objects.prefetch_cross("uuid", "char", "big").order_by("pk")
        )
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        keys = [(ref.big.pk, ref.uuid.pk, ref.char.pk) for ref in fetched]
    assert keys == [(ref.big_id, ref.uuid_id, ref.char_id) for ref in references]


def test_uuid_and_char_targets_prefetch_in_reverse():
    references = KeyedReferenceFactory.create_batch(2)
    uuid_target, char_target = references[0].uuid, references[1].char
    with assert_queries_per_db({"default": 0, "secondary": 2}):
        prefetch_related_objects([uuid_target], "keyedreference_set")
        prefetch_related_objects([char_target], "keyedreference_set")
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert link_ids(uuid_target.keyedreference_set.all()) == [references[0].pk]
        assert link_ids(char_target.keyedreference_set.all()) == [references[1].pk]


def test_the_direct_path_skips_instances_whose_target_is_cached(links):
    fetched = list(Link.objects.order_by("pk"))
    kept = Post(pk=fetched[0].post_id, title="already here")
    fetched[0].post = kept

    with assert_queries_per_db({"default": 1, "secondary": 0}) as captured:
        Link.post.prefetch_into(fetched)  # the path prefetch_cross("post") takes

    assert fetched[0].post is kept
    assert [link.post.pk for link in fetched[1:]] == [
        link.post_id for link in links[1:]
    ]
    assert len(captured["default"]) == 1


# The direct path of a reverse prefetch ----------------------------------------


def test_the_reverse_direct_path_skips_instances_already_prefetched(posts):
    fetched = list(Post.objects.order_by("pk"))
    prefetch_related_objects([fetched[0]], "links")
    kept = fetched[0]._prefetched_objects_cache["links"]

    with assert_queries_per_db({"default": 0, "secondary": 1}):
        # The path prefetch_cross("links") takes.
        prefetch_reverse_into(fetched, Link._meta.get_field("post"))

    assert fetched[0]._prefetched_objects_cache["links"] is kept
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        prefetched = [link_ids(post.links.all()) for post in fetched]
    assert prefetched == [link_ids(Link.objects.filter(post=post)) for post in posts]


def test_reverse_prefetched_querysets_keep_their_relation_filter(posts):
    _, second, _ = posts
    (fetched_first, fetched_second, _) = Post.objects.prefetch_cross("links").order_by(
        "pk"
    )

    with assert_queries_per_db({"default": 0, "secondary": 0}):
        assert fetched_first.links.count() == 2
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        # A new query, still bound to its post, as Django's manager gives.
        filtered = list(fetched_second.links.filter(url__contains="example"))
    assert filtered == list(Link.objects.filter(post=second))


def test_a_default_manager_that_prefetches_takes_djangos_path(posts, monkeypatch):
    first, *_ = posts
    TagFactory.create_batch(2, link=first.links.first())
    manager_class = type(Link._default_manager)
    plain = manager_class.get_queryset
    monkeypatch.setattr(
        manager_class,
        "get_queryset",
        lambda self: (
            plain(self).prefetch_related("tags") if self.model is Link else plain(self)
        ),
    )

    with assert_queries_per_db({"default": 1, "secondary": 2}):
        fetched = list(Post.objects.prefetch_cross("links").order_by("pk"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        tags = sorted(len(link.tags.all()) for link in fetched[0].links.all())

    assert tags == [0, 2]


# Nested reverse lookups and Prefetch objects on the direct path ----------------


@pytest.fixture
def direct_calls(monkeypatch):
    """The relations the reverse direct path answered, in order."""
    calls = []
    real = crossfk.query.prefetch_reverse_into

    def spy(instances, field):
        calls.append(field.related_query_name())
        return real(instances, field)

    monkeypatch.setattr(crossfk.query, "prefetch_reverse_into", spy)
    return calls


@pytest.fixture
def tagged():
    """Two posts with a tagged link each, and a post with no links."""
    first, second, lonely = PostFactory.create_batch(3)
    first_tags = TagFactory.create_batch(2, link__post=first)
    second_tag = TagFactory(link__post=second, name="kept")
    return SimpleNamespace(
        posts=[first, second, lonely], first_tags=first_tags, second_tag=second_tag
    )


def tag_names(post):
    return sorted(tag.name for link in post.links.all() for tag in link.tags.all())


def test_a_nested_reverse_lookup_takes_the_direct_path(tagged, direct_calls):
    with assert_queries_per_db({"default": 1, "secondary": 2}):
        fetched = list(Post.objects.prefetch_cross("links__tags").order_by("pk"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        names = [tag_names(post) for post in fetched]
        back = all(link.post is post for post in fetched for link in post.links.all())
    assert direct_calls == ["links"]
    assert names == [
        sorted(tag.name for tag in tagged.first_tags),
        [tagged.second_tag.name],
        [],
    ]
    assert back


def test_the_relation_and_its_nested_lookups_cost_one_query_for_the_relation(
    tagged, direct_calls
):
    lookups = ["links", "links__tags", "links__post__author"]
    with assert_queries_per_db({"default": 2, "secondary": 2}):
        fetched = list(Post.objects.prefetch_cross(*lookups).order_by("pk"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        # link.post is the post itself, whose author came in one query.
        authors = {link.post.author.pk for post in fetched for link in post.links.all()}
        names = [tag_names(post) for post in fetched]
    assert direct_calls == ["links"]
    assert authors == {post.author_id for post in tagged.posts[:2]}
    assert names[1] == [tagged.second_tag.name]


def test_a_nested_prefetch_keeps_its_queryset_and_to_attr(tagged, direct_calls):
    kept = Prefetch(
        "links__tags", queryset=Tag.objects.filter(name="kept"), to_attr="kept_tags"
    )
    with assert_queries_per_db({"default": 1, "secondary": 2}):
        fetched = list(Post.objects.prefetch_cross(kept).order_by("pk"))
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        kept_names = [
            [tag.name for link in post.links.all() for tag in link.kept_tags]
            for post in fetched
        ]
    assert direct_calls == ["links"]
    assert kept_names == [[], ["kept"], []]


def test_a_prefetch_of_the_relation_itself_takes_djangos_path(tagged, direct_calls):
    _, second, _ = tagged.posts
    only_second = Link.objects.filter(post=second)
    with assert_queries_per_db({"default": 1, "secondary": 2}):
        fetched = list(
            Post.objects.prefetch_cross(
                Prefetch("links", queryset=only_second), "links__tags"
            ).order_by("pk")
        )
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        names = [tag_names(post) for post in fetched]
    assert direct_calls == []
    assert names == [[], [tagged.second_tag.name], []]


def test_nested_lookups_descend_only_into_rows_just_fetched_as_djangos_do(tagged):
    def prefetched_tags(posts):
        return {
            link.pk: "tags" in getattr(link, "_prefetched_objects_cache", {})
            for post in posts
            for link in post.links.all()
        }

    outcomes = []
    for prefetch in (
        lambda posts: prefetch_direct(Post, posts, ["links__tags"]),
        lambda posts: prefetch_related_objects(posts, "links__tags"),
    ):
        posts = list(Post.objects.order_by("pk"))
        prefetch_related_objects(posts[:1], "links")  # the first post's are cached
        with assert_queries_per_db({"default": 0, "secondary": 2}):
            remaining = prefetch(posts)
        assert not remaining  # prefetch_direct() left nothing to Django
        outcomes.append(prefetched_tags(posts))

    direct, djangos = outcomes
    assert direct == djangos
    first_links = {tag.link_id for tag in tagged.first_tags}
    assert {pk for pk, done in direct.items() if not done} == first_links
