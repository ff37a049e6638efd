"""``crossfk.atomic``: one atomic block on each of several databases.

Covers commit and rollback on both aliases, use as a decorator (bare, with
aliases, with empty parentheses), nesting as Django nests ``atomic``, the
order in which the blocks commit, and a failed commit rolling back the rest.
Tests that need real commits use ``transaction=True``; the others run inside
pytest-django's per-test transaction, where crossfk.atomic's blocks are
savepoints that roll back for real all the same.
"""

from unittest import mock

import pytest
from django.db import DatabaseError, connections, transaction

from crossfk import atomic
from tests.factories import LinkFactory, PostFactory
from tests.testapp.models import Link, Post

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


class Boom(Exception):
    pass


def ids(queryset):
    return set(queryset.values_list("pk", flat=True))


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
def test_writes_on_both_aliases_commit_together():
    committed = []

    with atomic("default", "secondary"):
        link = LinkFactory()
        for alias in ("default", "secondary"):
            transaction.on_commit(
                lambda alias=alias: committed.append(alias), using=alias
            )
        assert committed == []

    assert sorted(committed) == ["default", "secondary"]
    assert ids(Post.objects.all()) == {link.post_id}
    assert ids(Link.objects.all()) == {link.pk}


def test_exception_rolls_back_both_databases():
    with pytest.raises(Boom), atomic("default", "secondary"):
        LinkFactory()
        raise Boom

    assert Post.objects.count() == 0
    assert Link.objects.count() == 0


@pytest.mark.parametrize("decorator", [atomic, atomic()], ids=["bare", "called"])
def test_decorator_without_aliases_covers_every_alias(decorator):
    @decorator
    def write_then_fail():
        LinkFactory()
        raise Boom

    with pytest.raises(Boom):
        write_then_fail()

    assert Post.objects.count() == 0
    assert Link.objects.count() == 0


@pytest.mark.allow_cross_database(
    reason="writes to 'default' inside crossfk.atomic('secondary') to show "
    "that the block does not roll them back"
)
def test_decorator_with_aliases_covers_only_those():
    post = PostFactory()

    @atomic("secondary")
    def write_both_then_fail():
        PostFactory()
        LinkFactory(post=post)
        raise Boom

    with pytest.raises(Boom):
        write_both_then_fail()

    assert Post.objects.count() == 2  # "default" was not in the block.
    assert Link.objects.count() == 0


def test_decorated_function_keeps_its_arguments_and_result():
    @atomic("default", "secondary")
    def create_link(url):
        return LinkFactory(url=url)

    link = create_link("https://example.com/kept")

    assert Link.objects.get(pk=link.pk).url == "https://example.com/kept"


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
def test_caught_exception_in_inner_block_rolls_back_only_the_inner_block():
    with atomic("default", "secondary"):
        kept_link = LinkFactory()
        with pytest.raises(Boom), atomic("default", "secondary"):
            LinkFactory()
            raise Boom

    assert ids(Post.objects.all()) == {kept_link.post_id}
    assert ids(Link.objects.all()) == {kept_link.pk}


def record_commits(committed):
    for alias in ("default", "secondary"):
        transaction.on_commit(lambda alias=alias: committed.append(alias), using=alias)


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
@pytest.mark.parametrize(
    "aliases", [("default", "secondary"), ("secondary", "default")]
)
def test_adding_references_commits_the_referenced_database_first(aliases):
    # Post ("default") is referenced by Link ("secondary"): a crash between
    # the commits may leave a post without links, never a link without post.
    committed = []
    with atomic(*aliases):
        LinkFactory()
        record_commits(committed)
    assert committed == ["default", "secondary"]


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
@pytest.mark.parametrize(
    "aliases", [("default", "secondary"), ("secondary", "default")]
)
def test_removing_references_commits_the_referencing_database_first(aliases):
    link = LinkFactory()
    committed = []
    with atomic(*aliases):
        Link.objects.filter(pk=link.pk).delete()
        Post.objects.filter(pk=link.post_id).delete()
        record_commits(committed)
    assert committed == ["secondary", "default"]


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
def test_failed_first_commit_rolls_back_the_other_database():
    # "default" commits first when adding; its failure must undo "secondary".
    failing_commit = mock.patch.object(
        connections["default"], "commit", side_effect=DatabaseError("commit lost")
    )

    with failing_commit, pytest.raises(DatabaseError), atomic("default", "secondary"):
        LinkFactory()

    assert Post.objects.count() == 0
    assert Link.objects.count() == 0


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
def test_a_decorated_function_called_within_itself_gets_a_block_of_its_own():
    # A shared block would forget, in the inner call, that the outer one
    # opened the transactions, and let Django run this callback as soon as
    # "default" commits, with "secondary" still uncommitted.
    secondary_was_open = []

    @atomic("default", "secondary")
    def create(title, inner=None):
        LinkFactory(post__title=title)
        if inner is None:
            raise Boom  # rolls back this call's block only
        transaction.on_commit(
            lambda: secondary_was_open.append(connections["secondary"].in_atomic_block),
            using="default",
        )
        with pytest.raises(Boom):
            create(inner)

    create("outer", inner="inner")

    assert secondary_was_open == [False]
    assert list(Post.objects.values_list("title", flat=True)) == ["outer"]
    assert Link.objects.count() == 1
