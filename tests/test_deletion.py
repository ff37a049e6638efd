"""Referential actions across databases: deleting a Post in "default".

Covers each ``on_delete`` action of a CrossDBForeignKey (the Link models in
"secondary") reached by ``instance.delete()``, ``QuerySet.delete()`` and an
ordinary cascade (``Author`` -> ``Post``); the counts ``delete()`` returns;
the number of queries per database; that PROTECT and RESTRICT stop the delete
before either database is written; and that a failure rolls back both.
"""

from contextlib import contextmanager

import pytest
from django.contrib.admin.utils import NestedObjects
from django.db import connections, transaction
from django.db.models import ProtectedError, RestrictedError, signals

from crossfk.locking import SHARED_LOCKS
from crossfk.testing import assert_queries_per_db
from tests.factories import (
    AuthorFactory,
    DefaultingLinkFactory,
    LinkFactory,
    NullingLinkFactory,
    PostFactory,
    ProtectedLinkFactory,
    RestrictedLinkFactory,
    SlugLinkFactory,
    SlugTargetFactory,
    TagFactory,
    UnenforcedLinkFactory,
)
from tests.testapp.models import (
    Author,
    DefaultingLink,
    Link,
    NullingLink,
    Post,
    RestrictedLink,
    Tag,
    UnenforcedLink,
)

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])

# Where "default" locks rows (PostgreSQL, MariaDB, MySQL) a delete locks the
# posts (one SELECT ... FOR UPDATE on "default") and reads the rows of the
# CASCADE, PROTECT and RESTRICT relations (Link, ProtectedLink,
# RestrictedLink) again under that lock, so that a link committed meanwhile
# is not left dangling.
LOCKS_ROWS = connections["default"].vendor in SHARED_LOCKS
LOCKS = 1 if LOCKS_ROWS else 0
RECHECKS = 3 if LOCKS_ROWS else 0


class TargetDeleteFailed(Exception):
    pass


@pytest.fixture
def placeholder_post():
    """The post SET_DEFAULT points at, made up front.

    ``default_post_id()`` creates it on first use; making it here keeps that
    INSERT out of the rows and queries the tests count.
    """
    return PostFactory(title="(deleted)", author=None)


@contextmanager
def receiver_connected(signal, receiver, sender):
    signal.connect(receiver, sender=sender, weak=False)
    try:
        yield
    finally:
        signal.disconnect(receiver, sender=sender)


def posts_with_links(post_count, links_per_post=2):
    posts = PostFactory.create_batch(post_count)
    for post in posts:
        LinkFactory.create_batch(links_per_post, post=post)
    return posts


def ids(queryset):
    return set(queryset.values_list("pk", flat=True))


# CASCADE ----------------------------------------------------------------------


def test_cascade_deletes_the_posts_links_and_their_tags():
    post = PostFactory()
    link = LinkFactory(post=post)
    TagFactory.create_batch(2, link=link)

    post.delete()

    assert Link.objects.count() == 0
    assert Tag.objects.count() == 0


def test_cascade_keeps_other_posts_links_and_tags(placeholder_post):
    post, other_post = PostFactory.create_batch(2)
    LinkFactory(post=post)
    other_link = LinkFactory(post=other_post)
    other_tag = TagFactory(link=other_link)

    post.delete()

    assert ids(Post.objects.all()) == {placeholder_post.pk, other_post.pk}
    assert ids(Link.objects.all()) == {other_link.pk}
    assert ids(Tag.objects.all()) == {other_tag.pk}


def test_delete_counts_include_rows_of_the_referencing_database():
    post = PostFactory()
    tagged_link = LinkFactory(post=post)
    LinkFactory(post=post)
    TagFactory.create_batch(3, link=tagged_link)

    deleted = post.delete()

    assert deleted == (
        6,
        {"testapp.Post": 1, "testapp.Link": 2, "testapp.Tag": 3},
    )


def test_instance_delete_costs_one_select_per_referencing_model(placeholder_post):
    post = PostFactory()
    TagFactory(link=LinkFactory(post=post))

    # default: SAVEPOINT, DELETE post, RELEASE (the test runs in a
    #   transaction, so crossfk.atomic is a savepoint).
    # secondary: one SELECT each for Link, ProtectedLink, RestrictedLink and
    #   DefaultingLink (SET_DEFAULT computes its default only for existing
    #   rows; SET_NULL updates without reading; DO_NOTHING is skipped),
    #   SAVEPOINT, DELETE tags, UPDATE NullingLink, DELETE links, RELEASE.
    with assert_queries_per_db({"default": 3 + LOCKS, "secondary": 9 + RECHECKS}):
        post.delete()


# QuerySet.delete() and batching ------------------------------------------------


def test_queryset_delete_cascades_to_the_links_of_every_post(placeholder_post):
    deleted_posts = posts_with_links(3)
    kept_link = LinkFactory()

    Post.objects.filter(pk__in=[post.pk for post in deleted_posts]).delete()

    assert ids(Post.objects.all()) == {placeholder_post.pk, kept_link.post_id}
    assert ids(Link.objects.all()) == {kept_link.pk}


@pytest.mark.parametrize("post_count", [5, 50])
def test_queryset_delete_query_count_does_not_grow_with_rows(
    placeholder_post, post_count
):
    posts_with_links(post_count)

    # The same numbers for 5 posts (10 links) and 50 posts (100 links).
    # default: SELECT the posts, SAVEPOINT, DELETE posts, RELEASE.
    # secondary: one SELECT each for Link, ProtectedLink, RestrictedLink,
    #   DefaultingLink, SAVEPOINT, DELETE tags, UPDATE NullingLink,
    #   DELETE links, RELEASE.
    with assert_queries_per_db({"default": 4 + LOCKS, "secondary": 9 + RECHECKS}):
        deleted = Post.objects.exclude(pk=placeholder_post.pk).delete()

    assert deleted == (
        3 * post_count,
        {"testapp.Post": post_count, "testapp.Link": 2 * post_count},
    )


def test_queryset_delete_of_many_rows_grows_only_by_djangos_delete_chunks(
    placeholder_post,
):
    posts_with_links(250)

    # The other queries of the test above, plus Django's own chunking: its
    # Collector deletes collected rows 100 primary keys per DELETE
    # (GET_ITERATOR_CHUNK_SIZE), so 3 DELETEs for 250 posts and 5 for 500
    # links. The SELECTs of referencing rows stay at one per model: the 250
    # post ids go to "secondary" in a single query.
    with assert_queries_per_db(
        {"default": 3 + 3 + LOCKS, "secondary": 8 + 5 + RECHECKS}
    ):
        Post.objects.exclude(pk=placeholder_post.pk).delete()

    assert ids(Post.objects.all()) == {placeholder_post.pk}
    assert Link.objects.count() == 0


def test_author_delete_cascades_through_posts_to_their_links():
    author = AuthorFactory()
    first_post, second_post = PostFactory.create_batch(2, author=author)
    LinkFactory.create_batch(2, post=first_post)
    LinkFactory(post=second_post)
    kept_link = LinkFactory()

    deleted = author.delete()

    assert not Author.objects.filter(pk=author.pk).exists()
    assert not Post.objects.filter(pk__in=[first_post.pk, second_post.pk]).exists()
    assert ids(Link.objects.all()) == {kept_link.pk}
    assert deleted[1] == {"testapp.Author": 1, "testapp.Post": 2, "testapp.Link": 3}


# PROTECT and RESTRICT ------------------------------------------------------------


@pytest.mark.parametrize(
    ("blocking_factory", "error", "blocked_attribute"),
    [
        (ProtectedLinkFactory, ProtectedError, "protected_objects"),
        (RestrictedLinkFactory, RestrictedError, "restricted_objects"),
    ],
    ids=["protect", "restrict"],
)
def test_blocking_action_stops_instance_delete_in_both_databases(
    blocking_factory, error, blocked_attribute
):
    post = PostFactory()
    link = LinkFactory(post=post)
    nulling_link = NullingLinkFactory(post=post)
    blocking_link = blocking_factory(post=post)

    with pytest.raises(error) as raised:
        post.delete()

    assert getattr(raised.value, blocked_attribute) == {blocking_link}
    assert Post.objects.filter(pk=post.pk).exists()
    assert ids(Link.objects.all()) == {link.pk}
    assert NullingLink.objects.get(pk=nulling_link.pk).post_id == post.pk
    assert ids(type(blocking_link).objects.all()) == {blocking_link.pk}


def test_protect_blocks_queryset_delete_of_every_post(placeholder_post):
    unprotected_post, protected_post = PostFactory.create_batch(2)
    link = LinkFactory(post=unprotected_post)
    protected_link = ProtectedLinkFactory(post=protected_post)

    with pytest.raises(ProtectedError) as raised:
        Post.objects.filter(pk__in=[unprotected_post.pk, protected_post.pk]).delete()

    assert raised.value.protected_objects == {protected_link}
    assert ids(Post.objects.all()) == {
        placeholder_post.pk,
        unprotected_post.pk,
        protected_post.pk,
    }
    assert ids(Link.objects.all()) == {link.pk}


def test_restrict_blocks_cascade_from_author():
    post = PostFactory()
    restricted_link = RestrictedLinkFactory(post=post)

    with pytest.raises(RestrictedError):
        post.author.delete()

    assert Author.objects.filter(pk=post.author_id).exists()
    assert Post.objects.filter(pk=post.pk).exists()
    assert ids(RestrictedLink.objects.all()) == {restricted_link.pk}


def test_restrict_is_reported_while_collecting_as_protect_is():
    # The admin's delete confirmation collects without deleting and lists
    # what blocks the delete: Django raises ProtectedError and RestrictedError
    # during collect(), and NestedObjects gathers both into ``protected``.
    post = PostFactory()
    restricted_link = RestrictedLinkFactory(post=post)
    collector = NestedObjects(using="default")

    collector.collect([post])

    assert collector.protected == {restricted_link}


# SET_NULL, SET_DEFAULT, DO_NOTHING ------------------------------------------------


def test_set_null_clears_post_id_and_keeps_the_row():
    post = PostFactory()
    nulling_link = NullingLinkFactory(post=post)

    post.delete()

    assert NullingLink.objects.get(pk=nulling_link.pk).post_id is None


def test_set_default_points_at_the_default_post(placeholder_post):
    post = PostFactory()
    defaulting_link = DefaultingLinkFactory(post=post)

    post.delete()

    assert DefaultingLink.objects.get(pk=defaulting_link.pk).post_id == (
        placeholder_post.pk
    )


def test_do_nothing_leaves_the_dangling_post_id():
    post = PostFactory()
    deleted_post_id = post.pk
    unenforced_link = UnenforcedLinkFactory(post=post)

    post.delete()

    assert not Post.objects.filter(pk=deleted_post_id).exists()
    assert UnenforcedLink.objects.get(pk=unenforced_link.pk).post_id == (
        deleted_post_id
    )


def test_do_nothing_costs_no_query_on_its_table():
    post = PostFactory()
    UnenforcedLinkFactory(post=post)

    # secondary: one SELECT each for Link, ProtectedLink, RestrictedLink and
    # DefaultingLink, SAVEPOINT, UPDATE NullingLink, RELEASE; none for
    # UnenforcedLink.
    with assert_queries_per_db({"secondary": 7 + RECHECKS}) as captured:
        post.delete()

    statements = [query["sql"] for query in captured["secondary"].captured_queries]
    assert not [sql for sql in statements if "testapp_unenforcedlink" in sql]


# Transactions ------------------------------------------------------------------


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
def test_failure_in_target_database_rolls_back_the_referencing_database():
    post = PostFactory()
    link = LinkFactory(post=post)
    tag = TagFactory(link=link)
    nulling_link = NullingLinkFactory(post=post)

    def fail(sender, **kwargs):
        raise TargetDeleteFailed

    # post_delete for Post is sent after the DELETE in "default", which
    # follows the writes in "secondary" (the tags' fast delete, the SET_NULL
    # update). The links come after the post, as in Django: Link.post is
    # nullable, so nothing orders them first.
    with (
        receiver_connected(signals.post_delete, fail, sender=Post),
        pytest.raises(TargetDeleteFailed),
    ):
        post.delete()

    assert Post.objects.filter(pk=post.pk).exists()
    assert ids(Link.objects.all()) == {link.pk}
    assert ids(Tag.objects.all()) == {tag.pk}
    assert NullingLink.objects.get(pk=nulling_link.pk).post_id == post.pk


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
def test_cascade_commits_the_referencing_database_first():
    post = PostFactory()
    LinkFactory(post=post)
    committed = []

    def record_commit(sender, using, **kwargs):
        transaction.on_commit(lambda: committed.append(sender._meta.label), using=using)

    # A crash between the two commits then leaves a post without links,
    # never a link to a missing post.
    with (
        receiver_connected(signals.post_delete, record_commit, sender=Post),
        receiver_connected(signals.post_delete, record_commit, sender=Link),
    ):
        post.delete()

    assert committed == ["testapp.Link", "testapp.Post"]


# Signals -----------------------------------------------------------------------


def test_pre_delete_receiver_of_post_still_sees_its_links():
    # With a real ForeignKey, Django sends every pre_delete before deleting
    # any row, so a receiver can still read (archive, count) the children.
    post = PostFactory()
    LinkFactory.create_batch(2, post=post)
    links_seen = []

    def count_links(sender, instance, **kwargs):
        links_seen.append(Link.objects.filter(post_id=instance.pk).count())

    with receiver_connected(signals.pre_delete, count_links, sender=Post):
        post.delete()

    assert links_seen == [2]


# The admin's delete confirmation ----------------------------------------------


def test_admin_confirmation_lists_the_rows_of_the_other_database():
    post = PostFactory()
    first, second = LinkFactory.create_batch(2, post=post)
    tag = TagFactory(link=first)
    collector = NestedObjects(using="default")

    with assert_queries_per_db({"default": 0}):
        collector.collect([post])

    assert collector.nested() == [post, [first, [tag], second]]
    assert collector.model_objs[Link] == {first, second}
    assert collector.protected == set()


def test_admin_confirmation_names_a_to_field_target_without_reading_it_back():
    # SlugLink stores its target's slug, not its primary key.
    target = SlugTargetFactory()
    links = SlugLinkFactory.create_batch(2, target=target)
    collector = NestedObjects(using="default")

    with assert_queries_per_db({"default": 0}):
        collector.collect([target])

    assert collector.nested() == [target, links]
