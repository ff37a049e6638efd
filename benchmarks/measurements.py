"""What the benchmark loads and what it reads, on both pairs of models.

Each read returns how many rows it reached, so the runner can check that
crossfk and Django answered the same question: a fast wrong answer is not a
result. Import this module only once Django is set up (it imports models).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.management import call_command
from django.db import connections, transaction

from benchmarks.benchapp.models import Link, Post, SameLink, SamePost
from crossfk.idsets import IdSet

ALIASES = ("default", "secondary")
BATCH_SIZE = 2000
# Titles start with "<i % 10>-", so one prefix selects exactly 10% of posts.
TITLE_PREFIX = "3-"
# One query per link is slow; past this many links the N+1 loop is timed on
# the first NAIVE_LINKS and scaled.
NAIVE_LINKS = 1000


def load(size: int) -> None:
    """Replace every row with ``size`` links over ``size // 10`` posts, twice.

    Link ``i`` points at post ``i % (size // 10)``: each post gets ten links,
    and the links hold ``size // 10`` distinct targets, so a forward prefetch
    has as many ids to send as the data allows. Both pairs get the same ids.
    """
    post_count = max(size // 10, 1)
    for alias in ALIASES:
        call_command("flush", database=alias, interactive=False, verbosity=0)
    titles = [f"{i % 10}-post-{i}" for i in range(post_count)]
    links = [(f"https://example.com/{i}", i % post_count + 1) for i in range(size)]
    with transaction.atomic(using="default"):
        for post_model in (Post, SamePost):
            post_model.objects.bulk_create(
                [post_model(id=i, title=title) for i, title in enumerate(titles, 1)],
                batch_size=BATCH_SIZE,
            )
        SameLink.objects.bulk_create(
            [
                SameLink(id=i, url=url, post_id=post_id)
                for i, (url, post_id) in enumerate(links, 1)
            ],
            batch_size=BATCH_SIZE,
        )
    with transaction.atomic(using="secondary"):
        Link.objects.bulk_create(
            [
                Link(id=i, url=url, post_id=post_id)
                for i, (url, post_id) in enumerate(links, 1)
            ],
            batch_size=BATCH_SIZE,
        )
    for alias in ALIASES:
        # Fresh planner statistics, so neither side is judged on stale ones.
        with connections[alias].cursor() as cursor:
            cursor.execute("ANALYZE")


def read_posts(links: Iterable) -> int:
    """Touch ``link.post.title`` on every link; return how many were read."""
    return sum(1 for link in links if link.post.title)


def read_links(posts: Iterable) -> int:
    """Touch ``link.url`` on every post's links; return how many were read."""
    return sum(1 for post in posts for link in post.links.all() if link.url)


def crossfk_prefetch() -> int:
    return read_posts(list(Link.objects.prefetch_cross("post")))


def orm_floor() -> int:
    """The least any Django-level approach pays: two ORM reads and a dict join."""
    links = list(Link.objects.all())
    ids = IdSet({link.post_id for link in links}, Post._meta.pk)
    posts = {post.pk: post for post in Post.objects.filter(pk__in=ids)}
    for link in links:
        link._state.fields_cache["post"] = posts.get(link.post_id)
    return read_posts(links)


def django_prefetch() -> int:
    return read_posts(list(SameLink.objects.prefetch_related("post")))


def django_join() -> int:
    return read_posts(list(SameLink.objects.select_related("post")))


def crossfk_select_related() -> int:
    return read_posts(list(Link.objects.select_related("post")))


def crossfk_values() -> int:
    rows = Link.objects.values_list("url", "post__title")
    return sum(1 for url, title in rows if url and title)


def django_values() -> int:
    rows = SameLink.objects.values_list("url", "post__title")
    return sum(1 for url, title in rows if url and title)


def crossfk_naive() -> int:
    return read_posts(Link.objects.order_by("pk")[:NAIVE_LINKS])


def orm_floor_reverse() -> int:
    """The least any Django-level reverse prefetch pays: two ORM reads, the
    rows grouped in a dict, each post's related queryset from its own
    manager holding them, and each link's post set."""
    posts = list(Post.objects.all())
    ids = IdSet({post.pk for post in posts}, Link._meta.get_field("post"))
    links_by_post = defaultdict(list)
    for link in Link.objects.filter(post_id__in=ids):
        links_by_post[link.post_id].append(link)
    for post in posts:
        links = links_by_post.get(post.pk, [])
        for link in links:
            link._state.fields_cache["post"] = post
        queryset = post.links.get_queryset()
        queryset._result_cache, queryset._prefetch_done = links, True
        post._prefetched_objects_cache = {"links": queryset}
    return read_links(posts)


def bare_floor_reverse() -> int:
    """Two ORM reads and the rows grouped in a dict, setting nothing: what a
    reverse prefetch costs without Django's related querysets (one per post,
    which ``post.links.all()`` answers from) and back-references."""
    posts = list(Post.objects.all())
    ids = IdSet({post.pk for post in posts}, Link._meta.get_field("post"))
    links_by_post = defaultdict(list)
    for link in Link.objects.filter(post_id__in=ids):
        links_by_post[link.post_id].append(link)
    return sum(
        1 for post in posts for link in links_by_post.get(post.pk, ()) if link.url
    )


def crossfk_reverse() -> int:
    return read_links(list(Post.objects.prefetch_cross("links")))


def django_reverse() -> int:
    return read_links(list(SamePost.objects.prefetch_related("links")))


def crossfk_filter() -> int:
    return len(list(Link.objects.filter(post__title__startswith=TITLE_PREFIX)))


def django_filter() -> int:
    return len(list(SameLink.objects.filter(post__title__startswith=TITLE_PREFIX)))


@dataclass(frozen=True)
class Measurement:
    """One timed read. ``max_links``: time that many links, scale to N."""

    side: str
    code: str
    read: Callable[[], int]
    max_links: int | None = None


@dataclass(frozen=True)
class Ratio:
    """crossfk's time over Django's, and the most the project promises."""

    label: str
    crossfk: str
    django: str
    target: float | None = None
    target_from_size: int = 0


MEASUREMENTS = {
    "prefetch_cross": Measurement(
        "crossfk", 'Link.objects.prefetch_cross("post")', crossfk_prefetch
    ),
    "floor": Measurement(
        "floor", "two ORM reads and a dict join (the least possible)", orm_floor
    ),
    "prefetch_related": Measurement(
        "Django", 'SameLink.objects.prefetch_related("post")', django_prefetch
    ),
    "select_related": Measurement(
        "Django", 'SameLink.objects.select_related("post")', django_join
    ),
    "select_related_cross": Measurement(
        "crossfk", 'Link.objects.select_related("post")', crossfk_select_related
    ),
    "values_cross": Measurement(
        "crossfk",
        'Link.objects.values_list("url", "post__title")',
        crossfk_values,
    ),
    "values_join": Measurement(
        "Django",
        'SameLink.objects.values_list("url", "post__title")',
        django_values,
    ),
    "naive": Measurement(
        "crossfk",
        "for link in Link.objects.all(): link.post",
        crossfk_naive,
        max_links=NAIVE_LINKS,
    ),
    "reverse_cross": Measurement(
        "crossfk", 'Post.objects.prefetch_cross("links")', crossfk_reverse
    ),
    "reverse_floor": Measurement(
        "floor",
        "two ORM reads, a dict grouping, each post's related queryset",
        orm_floor_reverse,
    ),
    "reverse_bare": Measurement(
        "floor",
        "two ORM reads and a dict grouping, nothing set",
        bare_floor_reverse,
    ),
    "reverse_django": Measurement(
        "Django", 'SamePost.objects.prefetch_related("links")', django_reverse
    ),
    "filter_cross": Measurement(
        "crossfk",
        f'Link.objects.filter(post__title__startswith="{TITLE_PREFIX}")',
        crossfk_filter,
    ),
    "filter_join": Measurement(
        "Django",
        f'SameLink.objects.filter(post__title__startswith="{TITLE_PREFIX}")',
        django_filter,
    ),
}

RATIOS = [
    Ratio(
        "forward prefetch / the ORM floor",
        "prefetch_cross",
        "floor",
        target=1.05,
        target_from_size=10_000,
    ),
    Ratio(
        "forward prefetch / Django prefetch_related",
        "prefetch_cross",
        "prefetch_related",
        target=1.05,
        target_from_size=10_000,
    ),
    Ratio(
        "select_related across / Django select_related",
        "select_related_cross",
        "select_related",
    ),
    Ratio("values() across / Django JOIN", "values_cross", "values_join"),
    Ratio(
        "reverse prefetch / the ORM floor",
        "reverse_cross",
        "reverse_floor",
        target=1.10,
        target_from_size=10_000,
    ),
    Ratio(
        "reverse prefetch / two reads and a dict grouping",
        "reverse_cross",
        "reverse_bare",
    ),
    Ratio(
        "reverse prefetch / Django prefetch_related", "reverse_cross", "reverse_django"
    ),
    Ratio(
        "cross filter (10%) / Django JOIN", "filter_cross", "filter_join", target=1.5
    ),
]
