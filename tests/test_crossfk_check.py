"""``crossfk_check``: dangling references found, counted, listed and fixed."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from crossfk import partition
from crossfk.testing import assert_queries_per_db
from tests.factories import (
    CustomerFactory,
    LinkFactory,
    OrderFactory,
    PostFactory,
    ProtectedLinkFactory,
    SlugLinkFactory,
    TagFactory,
)
from tests.tenants.models import TENANTS, Customer, Order
from tests.testapp.models import Link, ProtectedLink, Tag

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


def delete_posts_behind_crossfks_back(*posts):
    with connections["default"].cursor() as cursor:
        for post in posts:
            cursor.execute("DELETE FROM testapp_post WHERE id = %s", [post.pk])


def crossfk_check(*args, **options):
    stdout = StringIO()
    call_command("crossfk_check", *args, stdout=stdout, **options)
    return stdout.getvalue()


@pytest.fixture
def dangling_links():
    """Three links whose post vanished, next to two that are fine."""
    gone, kept = PostFactory(), PostFactory()
    broken = LinkFactory.create_batch(3, post=gone)
    LinkFactory.create_batch(2, post=kept)
    delete_posts_behind_crossfks_back(gone)
    return broken


def test_clean_databases_report_zero_and_exit_normally():
    LinkFactory.create_batch(2)
    output = crossfk_check("testapp.Link")
    assert output == "testapp.Link.post -> testapp.Post (default): 0 dangling\n"


def test_dangling_references_are_counted_and_fail_the_command(dangling_links):
    stdout = StringIO()
    with pytest.raises(CommandError, match="3 dangling reference") as caught:
        call_command("crossfk_check", "testapp.Link.post", stdout=stdout)
    assert caught.value.returncode == 1
    assert "testapp.Link.post -> testapp.Post (default): 3 dangling" in (
        stdout.getvalue()
    )


def test_verbosity_two_lists_each_dangling_row(dangling_links):
    stdout = StringIO()
    with pytest.raises(CommandError):
        call_command("crossfk_check", "testapp.Link", verbosity=2, stdout=stdout)
    for link in dangling_links:
        assert f"testapp.Link {link.pk}: post_id={link.post_id} is missing" in (
            stdout.getvalue()
        )


def test_scan_reads_in_pages_one_target_query_each(dangling_links):
    # 5 links, pages of 2: 3 pages, the last one short, which ends the scan.
    with (
        assert_queries_per_db({"default": 3, "secondary": 3}),
        pytest.raises(CommandError),
    ):
        crossfk_check("testapp.Link.post", batch_size=2)


def test_fix_null_clears_the_reference_and_keeps_the_rows(dangling_links):
    output = crossfk_check("testapp.Link", fix="null")
    assert "3 dangling, set to NULL" in output
    assert Link.objects.filter(post__isnull=True).count() == 3
    assert Link.objects.count() == 5
    crossfk_check("testapp.Link")  # clean now: no CommandError


def test_fix_delete_removes_the_rows_and_their_cascade(dangling_links):
    TagFactory(link=dangling_links[0])
    output = crossfk_check("testapp.Link", fix="delete")
    assert "3 dangling, deleted" in output
    assert Link.objects.count() == 2
    assert not Tag.objects.exists()


def test_fix_null_refuses_a_non_nullable_field_before_writing():
    protected = ProtectedLinkFactory()
    delete_posts_behind_crossfks_back(protected.post)
    with pytest.raises(CommandError, match=r"ProtectedLink\.post"):
        crossfk_check("testapp.ProtectedLink", fix="null")
    assert ProtectedLink.objects.get().post_id == protected.post_id


def test_selection_by_app_model_and_field():
    all_fields = crossfk_check("testapp")
    assert "testapp.Link.post" in all_fields
    assert "testapp.KeyedReference.uuid" in all_fields
    assert crossfk_check("testapp.KeyedReference.uuid").count("\n") == 1
    with pytest.raises(CommandError, match="No CrossDBForeignKey matches"):
        crossfk_check("testapp.Nothing")


def test_a_field_inherited_by_a_proxy_and_a_child_is_scanned_once():
    # SlugLink has a proxy (SlugLinkProxy) and a multi-table child
    # (FeaturedSlugLink) that both see its field; one row dangles.
    link = SlugLinkFactory()
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "DELETE FROM testapp_slugtarget WHERE slug = %s", [link.target_id]
        )
    stdout = StringIO()

    # One page with the row, the empty read that ends the scan, and one
    # existence query for the page: a second scan would double both.
    with (
        assert_queries_per_db({"default": 1, "secondary": 1}),
        pytest.raises(CommandError, match=r"^1 dangling reference"),
    ):
        call_command("crossfk_check", "testapp.SlugLink", stdout=stdout)

    assert stdout.getvalue() == (
        "testapp.SlugLink.target -> testapp.SlugTarget (default): 1 dangling\n"
    )
    assert crossfk_check_lines("testapp", "testapp.SlugLink") == 1


def crossfk_check_lines(label, prefix):
    stdout = StringIO()
    with pytest.raises(CommandError):
        call_command("crossfk_check", label, stdout=stdout)
    return sum(line.startswith(prefix) for line in stdout.getvalue().splitlines())


# Many databases ------------------------------------------------------------------


@pytest.mark.django_db(databases=["default", *TENANTS])
def test_a_model_in_several_databases_is_scanned_in_each():
    gone, kept = CustomerFactory.create_batch(2)
    for alias, customer in [("tenant_2", gone), ("tenant_2", gone), ("tenant_5", kept)]:
        with partition(alias):
            OrderFactory(customer=customer)
    Customer.objects.filter(pk=gone.pk)._raw_delete("default")

    with pytest.raises(CommandError, match="2 dangling"):
        crossfk_check("tenants.Order")
    output = crossfk_check("tenants.Order", fix="delete")

    order = "tenants.Order.customer in 'tenant_{}' -> tenants.Customer (default)"
    lines = output.splitlines()
    assert lines[2] == order.format(2) + ": 2 dangling, deleted"
    assert lines[5] == order.format(5) + ": 0 dangling"
    assert len(lines) == 8
    assert [alias for alias in TENANTS if Order.objects.using(alias).exists()] == [
        "tenant_5"
    ]


@pytest.mark.django_db(databases=["default", *TENANTS])
def test_the_databases_pages_are_checked_together_one_target_query_a_round():
    gone, kept = CustomerFactory.create_batch(2)
    # tenant_1: 5 orders, pages of 2 (2, 2, 1); tenant_4: 2 (2, then empty).
    for alias, count in [("tenant_1", 5), ("tenant_4", 2)]:
        with partition(alias):
            OrderFactory.create_batch(count - 1, customer=kept)
            OrderFactory(customer=gone)
    Customer.objects.filter(pk=gone.pk)._raw_delete("default")
    others = dict.fromkeys(set(TENANTS) - {"tenant_1", "tenant_4"}, 1)
    with (
        assert_queries_per_db({"default": 3, "tenant_1": 3, "tenant_4": 2, **others}),
        pytest.raises(CommandError, match="2 dangling"),
    ):
        crossfk_check("tenants.Order", batch_size=2)


@pytest.mark.django_db(databases=["default", *TENANTS])
def test_database_narrows_the_scan_to_those_databases():
    output = crossfk_check("tenants.Order.customer", database=["tenant_1", "tenant_6"])
    order = "tenants.Order.customer in 'tenant_{}' -> tenants.Customer (default)"
    assert output == (f"{order.format(1)}: 0 dangling\n{order.format(6)}: 0 dangling\n")


def test_database_refuses_an_unknown_alias():
    with pytest.raises(CommandError, match="--database: 'tenant_9' not in DATABASES"):
        crossfk_check(database=["tenant_9"])
