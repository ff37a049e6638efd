"""Lookups that cross the relation: a query on the other database, then an IN.

Covers forward (``Link.objects.filter(post__title=...)``) and reverse
(``Post.objects.filter(links__url=...)``) lookups through ``filter``,
``exclude``, ``get``, ``count``, ``exists`` and ``Q``; nesting with ordinary
foreign keys; laziness; id sets larger than SQLite's variable limit; UUID and
char keys; what raises ``FieldError`` instead of joining across databases;
and lookup values that try to inject SQL.
"""

from types import SimpleNamespace

import pytest
from django.core.exceptions import FieldError
from django.db.models import Case, Count, Exists, OuterRef, Q, Value, When

from crossfk import CrossQuerySet
from crossfk.testing import assert_queries_per_db
from tests.factories import (
    KeyedReferenceFactory,
    LinkFactory,
    PostFactory,
    SlugLinkFactory,
    SlugTargetFactory,
    TagFactory,
)
from tests.helpers import ids, pks
from tests.testapp.models import (
    BigTarget,
    CharTarget,
    FeaturedSlugLink,
    KeyedReference,
    Link,
    Post,
    SlugLinkProxy,
    Tag,
    UUIDTarget,
)

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


@pytest.fixture
def blog():
    """Two posts by different authors, three links to them and one to nothing."""
    django = PostFactory(title="Django tips", author__name="Ada")
    python = PostFactory(title="Python tricks", author__name="Grace")
    return SimpleNamespace(
        django=django,
        python=python,
        lonely=PostFactory(title="Lonely", author=None),
        django_links=LinkFactory.create_batch(2, post=django),
        python_link=LinkFactory(post=python, url="https://python.example/"),
        orphan=LinkFactory(post=None, url="https://orphan.example/"),
    )


# Forward: filter, get, count, exists -----------------------------------------


def test_filter_on_a_target_field(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert ids(Link.objects.filter(post__title="Django tips")) == pks(
            *blog.django_links
        )


def test_filter_with_a_lookup_on_a_target_field(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Link.objects.filter(post__title__startswith="Py"))
    assert matched == pks(blog.python_link)


def test_get_by_a_target_field(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert Link.objects.get(post__title="Python tricks") == blog.python_link


def test_get_without_a_match_raises_does_not_exist(blog):
    with (
        assert_queries_per_db({"default": 1, "secondary": 0}),
        pytest.raises(Link.DoesNotExist),
    ):
        Link.objects.get(post__title="Nobody wrote this")


def test_count(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert Link.objects.filter(post__title="Django tips").count() == 2


def test_exists(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert Link.objects.filter(post__title="Django tips").exists()


def test_no_matching_target_costs_no_query_on_the_source(blog):
    with assert_queries_per_db({"default": 1, "secondary": 0}):
        assert list(Link.objects.filter(post__title="Nobody wrote this")) == []


# Laziness --------------------------------------------------------------------


def test_building_a_cross_filter_costs_no_query(blog):
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        queryset = Link.objects.filter(post__title="Django tips")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert ids(queryset) == pks(*blog.django_links)


def test_chained_filter_exclude_and_q_cost_no_query_until_evaluated(blog):
    with assert_queries_per_db({"default": 0, "secondary": 0}):
        queryset = (
            Link.objects.filter(post__title__startswith="Django")
            .exclude(post__author__name="Grace")
            .filter(Q(post__title__contains="tips") | Q(url="https://x.example/"))
        )
    # One target query per cross condition, since each stands alone.
    with assert_queries_per_db({"default": 3, "secondary": 1}):
        assert ids(queryset) == pks(*blog.django_links)


def test_each_evaluation_reads_the_target_database_again(blog):
    queryset = Link.objects.filter(post__title="Written later")
    assert list(queryset) == []
    link = LinkFactory(post__title="Written later")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert list(queryset.all()) == [link]


def test_count_reads_the_target_database_at_each_call(blog):
    queryset = Link.objects.filter(post__title="Written later")
    assert queryset.count() == 0
    LinkFactory(post__title="Written later")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert queryset.count() == 1


# Exclude -----------------------------------------------------------------------


def test_exclude_keeps_rows_whose_id_is_null(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        kept = ids(Link.objects.exclude(post__title="Django tips"))
    assert kept == pks(blog.python_link, blog.orphan)


def test_exclude_without_matching_targets_keeps_every_row(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        kept = ids(Link.objects.exclude(post__title="Nobody wrote this"))
    assert kept == ids(Link.objects.all())


# Q objects ---------------------------------------------------------------------


def test_q_or_of_a_cross_and_a_local_lookup(blog):
    condition = Q(post__title="Python tricks") | Q(url=blog.orphan.url)
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Link.objects.filter(condition))
    assert matched == pks(blog.python_link, blog.orphan)


def test_negated_q_keeps_rows_whose_id_is_null(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Link.objects.filter(~Q(post__title="Django tips")))
    assert matched == pks(blog.python_link, blog.orphan)


def test_two_cross_conditions_in_one_filter_make_one_target_query(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(
            Link.objects.filter(post__title__endswith="s", post__author__name="Grace")
        )
    assert matched == pks(blog.python_link)


# Nested: an ordinary foreign key inside the other database ----------------------


def test_nested_lookup_joins_inside_the_target_database(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}) as captured:
        matched = ids(Link.objects.filter(post__author__name="Ada"))
    assert matched == pks(*blog.django_links)
    assert "JOIN" in captured["default"][0]["sql"]
    assert "testapp_post" not in captured["secondary"][0]["sql"]


def test_ordinary_fk_before_the_crossing_on_a_cross_queryset():
    tag = TagFactory(link__post__title="Django tips")
    TagFactory(link__post__title="Python tricks")
    with assert_queries_per_db({"default": 1, "secondary": 1}) as captured:
        matched = ids(CrossQuerySet(Tag).filter(link__post__title="Django tips"))
    assert matched == [tag.pk]
    assert "JOIN" in captured["secondary"][0]["sql"]


def test_plain_manager_lookup_across_the_relation_raises_field_error():
    # Tag is placed by CROSSFK_PARTITIONS and keeps Django's plain manager, so
    # crossfk's query splitting never sees this lookup; it must not reach
    # "secondary" as a join to testapp_post, a table that database lacks.
    TagFactory(link__post__title="Django tips")
    queryset = Tag.objects.filter(link__post__title="Django tips")
    with (
        assert_queries_per_db({"default": 0, "secondary": 0}),
        pytest.raises(FieldError, match=r"Link\.post"),
    ):
        list(queryset)


# Reverse: Post.links -------------------------------------------------------------


def test_reverse_filter_on_a_source_field(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Post.objects.filter(links__url="https://python.example/"))
    assert matched == pks(blog.python)


def test_reverse_filter_by_a_source_instance(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert ids(Post.objects.filter(links=blog.python_link)) == pks(blog.python)


def test_reverse_filter_by_a_list_of_source_instances(blog):
    wanted = [blog.python_link, blog.django_links[0]]
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Post.objects.filter(links__in=wanted))
    assert matched == pks(blog.django, blog.python)


def test_reverse_filter_by_a_source_id(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert ids(Post.objects.filter(links=blog.python_link.pk)) == pks(blog.python)


def test_reverse_isnull_true_finds_targets_without_sources(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert ids(Post.objects.filter(links__isnull=True)) == pks(blog.lonely)


def test_reverse_isnull_false_finds_targets_with_sources(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Post.objects.filter(links__isnull=False))
    assert matched == pks(blog.django, blog.python)


def test_reverse_nested_lookup_joins_inside_the_source_database(blog):
    TagFactory(link=blog.python_link, name="snake")
    with assert_queries_per_db({"default": 1, "secondary": 1}) as captured:
        matched = ids(Post.objects.filter(links__tags__name="snake"))
    assert matched == pks(blog.python)
    assert "JOIN" in captured["secondary"][0]["sql"]


def test_reverse_conditions_in_one_filter_hold_for_one_source(blog):
    first, _ = blog.django_links
    TagFactory(link=first, name="orm")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(
            Post.objects.filter(links__url=first.url, links__tags__name="orm")
        )
    assert matched == pks(blog.django)


def test_reverse_conditions_met_by_different_sources_do_not_match(blog):
    first, second = blog.django_links
    TagFactory(link=first, name="orm")
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        matched = ids(
            Post.objects.filter(links__url=second.url, links__tags__name="orm")
        )
    assert matched == []


def test_reverse_exclude(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Post.objects.exclude(links__url="https://python.example/"))
    assert matched == pks(blog.django, blog.lonely)


# Large id sets ---------------------------------------------------------------


def test_cross_filter_matching_forty_thousand_targets():
    # 40,000 ids: over SQLite's 32,766-variable limit when spelled one by one.
    posts = Post.objects.bulk_create(
        PostFactory.build_batch(40_000, author=None, title="Bulk")
    )
    linked = Link.objects.bulk_create(
        [LinkFactory.build(post=posts[0]), LinkFactory.build(post=posts[-1])]
    )
    LinkFactory(post__title="Other")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert ids(Link.objects.filter(post__title="Bulk")) == pks(*linked)


# UUID, char and big integer keys -----------------------------------------------


@pytest.fixture
def references():
    return KeyedReferenceFactory.create_batch(2)


def test_lookups_on_uuid_and_char_keys_stay_local(references):
    first = references[0]
    code_prefix = first.char.code[:-1]
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        matched = ids(
            KeyedReference.objects.filter(
                uuid__pk=first.uuid_id, char__code__startswith=code_prefix
            )
        )
    assert matched == [first.pk]


@pytest.mark.parametrize(
    ("target_model", "field_name"),
    [(UUIDTarget, "uuid"), (CharTarget, "char"), (BigTarget, "big")],
)
def test_reverse_lookup_sends_ids_of_the_key_type(references, target_model, field_name):
    first = references[0]
    wanted = getattr(first, f"{field_name}_id")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = list(
            target_model.objects.filter(keyedreference__pk=first.pk).values_list(
                "pk", flat=True
            )
        )
    assert matched == [wanted]


# What would join across databases raises FieldError ---------------------------


def test_order_by_a_target_field_raises():
    with (
        assert_queries_per_db({"default": 0, "secondary": 0}),
        pytest.raises(FieldError, match=r"Link\.post.*'post_id'"),
    ):
        Link.objects.order_by("post__title")


@pytest.mark.parametrize("ordering", ["post_id", "post", "-post_id", "-post"])
def test_order_by_the_relation_uses_the_local_column(ordering):
    lower, higher = PostFactory.create_batch(2)
    first = LinkFactory(post=higher)
    second = LinkFactory(post=lower)
    expected = [second.pk, first.pk]
    if ordering.startswith("-"):
        expected.reverse()
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        ordered = list(Link.objects.order_by(ordering).values_list("pk", flat=True))
    assert ordered == expected


def test_bare_select_related_skips_the_nullable_cross_relation(blog):
    with assert_queries_per_db({"default": 0, "secondary": 1}) as captured:
        fetched = list(Link.objects.select_related())
    assert sorted(link.pk for link in fetched) == ids(Link.objects.all())
    assert "JOIN" not in captured["secondary"][0]["sql"]


# Lookup values reach SQL as parameters -----------------------------------------


def test_injected_quote_in_a_cross_lookup_matches_nothing(blog):
    hostile = "x' OR '1'='1"
    with assert_queries_per_db({"default": 1, "secondary": 0}):
        assert list(Link.objects.filter(post__title=hostile)) == []
    assert Post.objects.count() == 3
    assert Link.objects.count() == 4


def test_injected_quote_in_a_cross_lookup_is_compared_literally(blog):
    hostile = LinkFactory(post__title="x' OR '1'='1")
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        matched = ids(Link.objects.filter(post__title="x' OR '1'='1"))
    assert matched == [hostile.pk]


# Where a split lookup lands: expressions, proxies, multi-table children -------


def test_a_cross_lookup_in_an_aggregate_filter_and_in_when(blog):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        counted = Link.objects.aggregate(
            django=Count("pk", filter=Q(post__title="Django tips"))
        )
    assert counted == {"django": 2}

    with assert_queries_per_db({"default": 1, "secondary": 1}):
        marked = dict(
            Link.objects.annotate(
                is_django=Case(
                    When(post__title="Django tips", then=Value(True)),
                    default=Value(False),
                )
            ).values_list("pk", "is_django")
        )
    assert sorted(pk for pk, is_django in marked.items() if is_django) == pks(
        *blog.django_links
    )
    assert len(marked) == 4


def test_a_cross_lookup_in_a_subquery_filters_the_subquerys_own_rows(blog):
    # The inner Link query splits its own lookup, on its own table.
    links = Link.objects.filter(post__title="Python tricks", pk=OuterRef("pk"))
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        found = ids(Link.objects.filter(Exists(links)))
    assert found == pks(blog.python_link)


def test_a_cross_lookup_from_a_proxy_and_from_a_multi_table_child():
    wanted, other = SlugTargetFactory(name="B"), SlugTargetFactory(name="C")
    plain = SlugLinkFactory(target=wanted)
    SlugLinkFactory(target=other)
    featured = FeaturedSlugLink.objects.create(target=wanted, headline="x")
    FeaturedSlugLink.objects.create(target=other, headline="y")

    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert ids(SlugLinkProxy.objects.filter(target__name="B")) == pks(
            plain, featured
        )
    # The child reads the relation's column from its parent's table.
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert ids(FeaturedSlugLink.objects.filter(target__name="B")) == pks(featured)
    others = [link.pk for link in FeaturedSlugLink.objects.exclude(pk=featured.pk)]
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        assert ids(FeaturedSlugLink.objects.exclude(target__name="B")) == others
