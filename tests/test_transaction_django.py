"""crossfk inside Django's own transactions: never a dangling reference, never
rows lost when an outer block rolls back.

A write over two databases is let through only when one ``crossfk.atomic``
commits both; inside a ``transaction.atomic()`` that covers one database,
it is refused before anything is written. Savepoints, ``set_rollback()``,
``on_commit()`` and ``AtomicRequestsMiddleware`` are covered here; the
process killed at each commit boundary inside such blocks is in
``test_faults_postgresql.py``. Tests that must see real commits use
``transaction=True``.
"""

import logging

import pytest
from django.db import connections, transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import path

from crossfk import CrossDBIntegrityError, atomic
from crossfk.checks import check_atomic_requests
from crossfk.exceptions import CrossDBTransactionError
from tests.factories import LinkFactory, PostFactory
from tests.helpers import ids
from tests.testapp.models import Link, Post

pytestmark = pytest.mark.django_db(databases=["default", "secondary"], transaction=True)

BOTH = ("default", "secondary")


class Boom(Exception):
    pass


def refused(*states):
    """``pytest.raises`` for crossfk's refusal, its message naming ``states``."""
    return pytest.raises(CrossDBTransactionError, match=".*".join(states))


# Django's transaction.atomic() on one database -------------------------------


def test_reference_to_a_target_in_an_open_django_block_is_refused():
    with pytest.raises(Boom), transaction.atomic():
        post = Post.objects.create(title="rolled back")
        with refused(
            r"Writing Link\.post needs 'default', 'secondary'",
            r"'default' is inside a transaction\.atomic\(\) block",
            r"'secondary' is in no transaction",
            r"crossfk\.atomic\('default', 'secondary'\)",
        ):
            Link.objects.create(url="https://a.example", post=post)
        raise Boom

    assert Post.objects.count() == 0
    assert Link.objects.count() == 0


def test_reference_from_a_django_block_on_its_own_database_is_allowed():
    # The admin's change form: transaction.atomic() on Link's database; the
    # post was committed before, so no rollback can make the link dangle.
    post = PostFactory()
    with pytest.raises(Boom), transaction.atomic(using="secondary"):
        Link.objects.create(url="https://a.example", post=post)
        raise Boom
    with transaction.atomic(using="secondary"):
        link = Link.objects.create(url="https://b.example", post=post)

    assert ids(Link.objects.all()) == [link.pk]


def test_crossfk_atomic_inside_a_django_block_on_one_of_its_databases_is_refused():
    with transaction.atomic():
        with (
            refused(
                r"crossfk\.atomic\('default', 'secondary'\) needs",
                r"'default' is inside a transaction\.atomic\(\) block",
            ),
            atomic(*BOTH),
        ):
            Post.objects.create(title="never written")
        assert connections["secondary"].get_autocommit()

    assert Post.objects.count() == 0


def test_crossfk_atomic_inside_django_blocks_on_each_database_is_refused():
    # ATOMIC_REQUESTS on both databases: two blocks, committed one by one.
    with (
        transaction.atomic(using="secondary"),
        transaction.atomic(),
        refused(r"'default' is inside a transaction\.atomic\(\) block"),
        atomic(*BOTH),
    ):
        pass


def test_crossfk_atomic_inside_a_narrower_crossfk_atomic_is_refused():
    with (
        atomic("default"),
        refused(r"'default' is inside crossfk\.atomic\('default'\)"),
        atomic(*BOTH),
    ):
        pass


def test_delete_cascading_out_of_a_django_block_is_refused():
    link = LinkFactory()
    with pytest.raises(Boom), transaction.atomic():
        with refused(
            rf"Deleting Post {link.post_id} needs 'default', 'secondary'",
            r"'secondary' is in no transaction",
        ):
            link.post.delete()
        raise Boom

    assert ids(Post.objects.all()) == [link.post_id]
    assert ids(Link.objects.all()) == [link.pk]


def test_delete_with_nothing_to_write_elsewhere_is_allowed_in_a_django_block():
    post, kept = PostFactory.create_batch(2)
    link = LinkFactory(post=kept)
    post_pk = post.pk
    with pytest.raises(Boom), transaction.atomic():
        post.delete()
        raise Boom
    assert Post.objects.filter(pk=post_pk).exists()
    with transaction.atomic():
        Post.objects.filter(pk=post_pk).delete()

    assert ids(Post.objects.all()) == [kept.pk]
    assert ids(Link.objects.all()) == [link.pk]


# One crossfk.atomic over both databases ----------------------------------------


def test_django_blocks_inside_crossfk_atomic_roll_back_with_it():
    with pytest.raises(Boom), atomic(*BOTH):
        with transaction.atomic():
            post = Post.objects.create(title="rolled back")
        with transaction.atomic(using="secondary"):
            Link.objects.create(url="https://a.example", post=post)
        raise Boom

    assert Post.objects.count() == Link.objects.count() == 0


def test_set_rollback_on_one_database_rolls_back_both():
    with atomic(*BOTH):
        LinkFactory()
        transaction.set_rollback(True, using="default")

    assert Post.objects.count() == Link.objects.count() == 0


def test_savepoint_that_undoes_a_referenced_target_fails_the_block():
    kept = PostFactory()
    with pytest.raises(CrossDBIntegrityError) as raised, atomic(*BOTH):
        Link.objects.create(url="https://kept.example", post=kept)
        try:
            with transaction.atomic():
                post = Post.objects.create(title="undone")
                Link.objects.create(url="https://a.example", post=post)
                raise Boom
        except Boom:
            pass

    assert str(raised.value) == (
        f"Link.post: rows in 'secondary' refer to Post {post.pk!r}, which "
        f"database 'default' no longer has: a savepoint inside "
        f"crossfk.atomic('default', 'secondary') rolled back one database but "
        f"not the other. crossfk.atomic('default', 'secondary') was rolled "
        f"back in every database."
    )
    assert ids(Post.objects.all()) == [kept.pk]
    assert Link.objects.count() == 0


def test_savepoint_that_undoes_a_cascading_delete_fails_the_block():
    link = LinkFactory()
    with (
        pytest.raises(CrossDBIntegrityError, match=r"was deleted with the rows"),
        atomic(*BOTH),
    ):
        try:
            with transaction.atomic():
                link.post.delete()
                raise Boom
        except Boom:
            pass

    assert Post.objects.count() == 1
    assert ids(Link.objects.all()) == [link.pk]


def test_savepoint_released_normally_commits_both():
    with atomic(*BOTH):
        with transaction.atomic():
            post = Post.objects.create(title="kept")
            link = Link.objects.create(url="https://a.example", post=post)
        doomed = LinkFactory()
        with transaction.atomic():
            doomed.post.delete()

    assert ids(Post.objects.all()) == [post.pk]
    assert ids(Link.objects.all()) == [link.pk]


# on_commit() --------------------------------------------------------------------


def test_on_commit_callbacks_run_once_every_database_has_committed():
    seen = []

    def callback(alias):
        seen.append(
            (
                alias,
                [connections[other].in_atomic_block for other in BOTH],
                Link.objects.count(),
            )
        )

    with atomic(*BOTH):
        LinkFactory()
        for alias in BOTH:
            transaction.on_commit(lambda alias=alias: callback(alias), using=alias)
        assert seen == []

    assert seen == [("default", [False, False], 1), ("secondary", [False, False], 1)]


def test_failing_on_commit_callback_undoes_no_commit():
    ran = []
    with pytest.raises(Boom), atomic(*BOTH):
        link = LinkFactory()
        transaction.on_commit(lambda: (_ for _ in ()).throw(Boom()), using="default")
        transaction.on_commit(lambda: ran.append("secondary"), using="secondary")

    assert ids(Post.objects.all()) == [link.post_id]
    assert ids(Link.objects.all()) == [link.pk]
    assert ran == []  # As in Django, a failing callback stops the others.


def test_robust_on_commit_callback_is_logged_and_the_others_run(caplog):
    ran = []
    with (
        caplog.at_level(logging.ERROR, logger="django.db.backends.base"),
        atomic(*BOTH),
    ):
        LinkFactory()
        transaction.on_commit(
            lambda: (_ for _ in ()).throw(Boom()), using="default", robust=True
        )
        transaction.on_commit(lambda: ran.append("secondary"), using="secondary")

    assert ran == ["secondary"]
    assert "in on_commit() during transaction" in caplog.text


def test_on_commit_callbacks_are_dropped_on_rollback():
    ran = []
    with pytest.raises(Boom), atomic(*BOTH):
        transaction.on_commit(lambda: ran.append("default"), using="default")
        raise Boom
    assert ran == []


# AtomicRequestsMiddleware --------------------------------------------------------


def create_post_and_link(request):
    post = Post.objects.create(title=request.GET["title"])
    Link.objects.create(url="https://a.example", post=post)
    if "fail" in request.GET:
        raise Boom
    return HttpResponse(str(post.pk))


@transaction.non_atomic_requests(using="default")
@transaction.non_atomic_requests(using="secondary")
def create_without_transaction(request):
    return create_post_and_link(request)


async def count_posts(request):
    return HttpResponse(str(await Post.objects.acount()))


@transaction.non_atomic_requests(using="default")
@transaction.non_atomic_requests(using="secondary")
async def count_posts_outside_transactions(request):
    return await count_posts(request)


urlpatterns = [
    path("create/", create_post_and_link),
    path("non-atomic/", create_without_transaction),
    path("async/", count_posts),
    path("async-non-atomic/", count_posts_outside_transactions),
]

MIDDLEWARE = ["crossfk.middleware.AtomicRequestsMiddleware"]


@pytest.fixture
def client_with_middleware(settings):
    settings.MIDDLEWARE = MIDDLEWARE
    settings.ROOT_URLCONF = __name__
    return Client(raise_request_exception=False)


def test_middleware_commits_a_request_writing_both_databases(client_with_middleware):
    response = client_with_middleware.get("/create/", {"title": "kept"})

    assert response.status_code == 200
    post = Post.objects.get()
    assert str(post.pk) == response.text
    assert list(Link.objects.values_list("post_id", flat=True)) == [post.pk]


def test_middleware_rolls_back_both_databases_when_the_view_raises(
    client_with_middleware,
):
    response = client_with_middleware.get("/create/", {"title": "x", "fail": "1"})

    assert response.status_code == 500
    assert Post.objects.count() == Link.objects.count() == 0


def test_middleware_honours_non_atomic_requests_on_every_database(
    client_with_middleware,
):
    response = client_with_middleware.get("/non-atomic/", {"title": "x", "fail": "1"})

    assert response.status_code == 500
    assert Post.objects.count() == Link.objects.count() == 1


def test_middleware_refuses_an_async_view_it_would_wrap(client_with_middleware):
    response = client_with_middleware.get("/async/")

    assert response.status_code == 500
    assert isinstance(response.exc_info[1], RuntimeError)
    assert "non_atomic_requests for 'default', 'secondary'" in str(response.exc_info[1])


def test_middleware_serves_an_async_view_left_out_of_every_database(
    client_with_middleware,
):
    PostFactory()

    response = client_with_middleware.get("/async-non-atomic/")

    assert response.status_code == 200
    assert response.text == "1"


def test_atomic_requests_on_one_database_refuses_the_cross_write(settings):
    settings.ROOT_URLCONF = __name__
    settings.MIDDLEWARE = []
    connections["default"].settings_dict["ATOMIC_REQUESTS"] = True
    try:
        with refused(
            r"'default' is inside a transaction\.atomic\(\) block",
            r"AtomicRequestsMiddleware instead of ATOMIC_REQUESTS",
        ):
            Client().get("/create/", {"title": "x"})
    finally:
        connections["default"].settings_dict["ATOMIC_REQUESTS"] = False

    assert Post.objects.count() == Link.objects.count() == 0


def test_check_warns_of_atomic_requests_on_a_connected_database():
    connections["default"].settings_dict["ATOMIC_REQUESTS"] = True
    try:
        [warning] = check_atomic_requests()
    finally:
        connections["default"].settings_dict["ATOMIC_REQUESTS"] = False

    assert warning.id == "crossfk.W003"
    assert "ATOMIC_REQUESTS is on for 'default'" in warning.msg
    assert "crossfk.middleware.AtomicRequestsMiddleware" in warning.hint
    assert check_atomic_requests() == []
