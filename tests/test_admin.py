"""The admin over a cross relation: ``Link.post``, a Link in "secondary".

Covers the changelist (each post's ``str()`` in ``list_display`` at a query
cost that does not grow with the rows; search and filters across the
relation), the change form's three widgets (a select, ``raw_id_fields`` with
its lookup popup, ``autocomplete_fields`` with its JSON endpoint), each
reading the posts from "default", and the delete confirmation of a post,
which lists and then deletes its links and their tags in "secondary".
"""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from pytest_django.asserts import assertContains, assertInHTML, assertRedirects

from crossfk.exceptions import CrossDBTransactionError
from crossfk.testing import assert_queries_per_db
from tests.factories import AuthorFactory, LinkFactory, PostFactory, TagFactory
from tests.testapp.models import Link, Post, Tag

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])

MISSING_ID = 987654


@pytest.fixture
def admin_site_client():
    """A client logged in as a superuser (users live in "default")."""
    user = get_user_model().objects.create_superuser(username="admin")
    client = Client()
    client.force_login(user)
    return client


def listed(response):
    """The ids of the rows a changelist response shows."""
    return {obj.pk for obj in response.context["cl"].result_list}


# Changelist: list_display --------------------------------------------------


# Whatever the number of rows: on "default" the session, the user, the
# choices of the two filters ("post", "post__author") and one query for the
# page's posts; on "secondary" two counts and the page of links.
@pytest.mark.parametrize("link_count", [5, 20])
def test_changelist_shows_each_post_with_queries_independent_of_rows(
    admin_site_client, link_count
):
    links = LinkFactory.create_batch(link_count)

    with assert_queries_per_db({"default": 5, "secondary": 3}):
        response = admin_site_client.get("/admin/testapp/link/")

    assert listed(response) == {link.pk for link in links}
    for link in links:
        assertInHTML(
            f'<td class="field-post nowrap">{link.post.title}</td>', response.text
        )


def test_changelist_shows_a_dash_for_a_link_without_post(admin_site_client):
    link = LinkFactory(post=None)

    response = admin_site_client.get("/admin/testapp/link/")

    assert listed(response) == {link.pk}
    assertInHTML('<td class="field-post nowrap">-</td>', response.text)


# Changelist: search_fields and list_filter ----------------------------------


def test_search_by_post_title_returns_its_links(admin_site_client):
    django_post = PostFactory(title="Django tips")
    django_links = LinkFactory.create_batch(2, post=django_post)
    LinkFactory(post=PostFactory(title="Flask tips"))

    response = admin_site_client.get("/admin/testapp/link/?q=django")

    assert listed(response) == {link.pk for link in django_links}


def test_search_matches_the_url_or_the_post_title(admin_site_client):
    by_title = LinkFactory(post=PostFactory(title="Django tips"))
    by_url = LinkFactory(url="https://django.example", post=PostFactory(title="Misc"))
    LinkFactory(url="https://flask.example", post=PostFactory(title="Flask tips"))

    response = admin_site_client.get("/admin/testapp/link/?q=django")

    assert listed(response) == {by_title.pk, by_url.pk}


def test_filter_by_post_returns_its_links(admin_site_client):
    post, other_post = PostFactory.create_batch(2)
    links = LinkFactory.create_batch(2, post=post)
    LinkFactory(post=other_post)

    response = admin_site_client.get(f"/admin/testapp/link/?post__id__exact={post.pk}")

    assert listed(response) == {link.pk for link in links}


def test_filter_by_post_author_returns_the_links_of_their_posts(admin_site_client):
    author = AuthorFactory()
    links = [
        LinkFactory(post=post) for post in PostFactory.create_batch(2, author=author)
    ]
    LinkFactory(post=PostFactory())

    response = admin_site_client.get(
        f"/admin/testapp/link/?post__author__id__exact={author.pk}"
    )

    assert listed(response) == {link.pk for link in links}


def test_filter_by_empty_post_author_matches_as_a_join_would(admin_site_client):
    # A LEFT JOIN leaves a link without a post with no author either.
    of_authorless_post = LinkFactory(post=PostFactory(author=None))
    without_post = LinkFactory(post=None)
    LinkFactory(post=PostFactory())

    response = admin_site_client.get("/admin/testapp/link/?post__author__isnull=True")

    assert listed(response) == {of_authorless_post.pk, without_post.pk}


def test_filter_sidebar_lists_the_posts_and_authors(admin_site_client):
    link = LinkFactory()

    response = admin_site_client.get("/admin/testapp/link/")

    post, author = link.post, link.post.author
    assertContains(response, f'href="?post__id__exact={post.pk}"')
    assertContains(response, f'href="?post__author__id__exact={author.pk}"')


def test_filter_facets_count_the_links_per_post_and_author(admin_site_client):
    post = PostFactory()
    LinkFactory.create_batch(2, post=post)
    LinkFactory()

    response = admin_site_client.get("/admin/testapp/link/?_facets=True")

    assertContains(response, f"{post.title} (2)")
    assertContains(response, f"{post.author.name} (2)")


# Change form: a select --------------------------------------------------------


def test_change_form_select_lists_the_posts(admin_site_client):
    link = LinkFactory()
    other_posts = PostFactory.create_batch(2)

    with assert_queries_per_db({"secondary": 1}):
        response = admin_site_client.get(f"/admin/testapp/link/{link.pk}/change/")

    assertInHTML(
        f'<option value="{link.post.pk}" selected>{link.post.title}</option>',
        response.text,
    )
    for post in other_posts:
        assertInHTML(f'<option value="{post.pk}">{post.title}</option>', response.text)


def test_add_form_saves_the_link_in_secondary(admin_site_client, settings):
    # The admin logs the addition in django_admin_log, in "default", inside
    # its transaction.atomic() on Link's database; the middleware makes both
    # part of one crossfk.atomic.
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "crossfk.middleware.AtomicRequestsMiddleware",
    ]
    post = PostFactory()

    response = admin_site_client.post(
        "/admin/testapp/link/add/", {"url": "https://a.example", "post": post.pk}
    )

    assertRedirects(response, "/admin/testapp/link/")
    assert list(Link.objects.values_list("url", "post_id")) == [
        ("https://a.example", post.pk)
    ]


def test_add_form_with_a_missing_post_shows_an_error_and_saves_nothing(
    admin_site_client,
):
    response = admin_site_client.post(
        "/admin/testapp/link/add/", {"url": "https://a.example", "post": MISSING_ID}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "post": [
            "Select a valid choice. That choice is not one of the available choices."
        ]
    }
    assert Link.objects.count() == 0


# Change form: raw_id_fields ---------------------------------------------------


def test_raw_id_widget_shows_the_posts_label(admin_site_client):
    link = LinkFactory()

    response = admin_site_client.get(f"/raw-id-admin/testapp/link/{link.pk}/change/")

    assertInHTML(
        f'<strong><a href="/raw-id-admin/testapp/post/{link.post.pk}/change/">'
        f"{link.post.title}</a></strong>",
        response.text,
    )


def test_raw_id_lookup_popup_lists_the_posts(admin_site_client):
    link = LinkFactory()
    other_post = PostFactory()
    form = admin_site_client.get(f"/raw-id-admin/testapp/link/{link.pk}/change/")
    assertContains(form, 'href="/raw-id-admin/testapp/post/?_to_field=id"')

    response = admin_site_client.get(
        "/raw-id-admin/testapp/post/?_to_field=id&_popup=1"
    )

    assert response.status_code == 200
    assert listed(response) == {link.post.pk, other_post.pk}


# Change form: autocomplete_fields ---------------------------------------------


def test_autocomplete_widget_shows_the_selected_post(admin_site_client):
    link = LinkFactory()

    response = admin_site_client.get(
        f"/autocomplete-admin/testapp/link/{link.pk}/change/"
    )

    assertInHTML(
        f'<option value="{link.post.pk}" selected>{link.post.title}</option>',
        response.text,
    )


def test_autocomplete_returns_the_matching_posts_as_json(admin_site_client):
    orm, tips = PostFactory(title="Django ORM"), PostFactory(title="Django tips")
    PostFactory(title="Flask tips")

    with assert_queries_per_db({"secondary": 0}):
        response = admin_site_client.get(
            "/autocomplete-admin/autocomplete/"
            "?app_label=testapp&model_name=link&field_name=post&term=django"
        )

    assert response.json() == {
        "results": [
            {"id": str(orm.pk), "text": "Django ORM"},
            {"id": str(tips.pk), "text": "Django tips"},
        ],
        "pagination": {"more": False},
    }


# Delete confirmation ----------------------------------------------------------


def test_delete_confirmation_lists_the_posts_links_and_tags(admin_site_client):
    post = PostFactory()
    tagged_link, other_link = LinkFactory.create_batch(2, post=post)
    tag = TagFactory(link=tagged_link)

    response = admin_site_client.get(f"/admin/testapp/post/{post.pk}/delete/")

    assert dict(response.context["model_count"]) == {"posts": 1, "links": 2, "tags": 1}
    for link in (tagged_link, other_link):
        assertInHTML(
            f'<a href="/admin/testapp/link/{link.pk}/change/">{link.url}</a>',
            response.text,
        )
    assertInHTML(
        f'<li>Tag: <a href="/admin/testapp/tag/{tag.pk}/change/">{tag}</a></li>',
        response.text,
    )


def test_delete_confirmation_deletes_the_links_and_tags_in_secondary(
    admin_site_client, settings
):
    # The admin deletes in transaction.atomic() on Post's database; the
    # middleware makes it part of one crossfk.atomic over both.
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "crossfk.middleware.AtomicRequestsMiddleware",
    ]
    post, other_post = PostFactory.create_batch(2)
    TagFactory(link=LinkFactory(post=post))
    other_link = LinkFactory(post=other_post)

    response = admin_site_client.post(
        f"/admin/testapp/post/{post.pk}/delete/", {"post": "yes"}
    )

    assertRedirects(response, "/admin/testapp/post/")
    assert not Post.objects.filter(pk=post.pk).exists()
    assert list(Link.objects.values_list("pk", flat=True)) == [other_link.pk]
    assert Tag.objects.count() == 0


@pytest.mark.parametrize("link_count", [5, 20])
def test_cross_admin_selects_the_shown_relation_without_list_select_related(
    admin_site_client, link_count
):
    # Django 5.2's bare select_related() skips a nullable relation; 6.1 names
    # the shown ones, and CrossDBModelAdmin does so on 5.2 too.
    LinkFactory.create_batch(link_count)

    with assert_queries_per_db({"default": 3, "secondary": 3}):
        response = admin_site_client.get("/raw-id-admin/testapp/link/")

    assert len(listed(response)) == link_count


def test_delete_across_databases_without_the_middleware_is_refused(
    admin_site_client,
):
    # ModelAdmin.delete_view() runs in transaction.atomic() on Post's
    # database only: a rollback there would not bring the links back.
    link = LinkFactory()

    with pytest.raises(CrossDBTransactionError, match="AtomicRequestsMiddleware"):
        admin_site_client.post(
            f"/admin/testapp/post/{link.post_id}/delete/", {"post": "yes"}
        )

    assert Post.objects.filter(pk=link.post_id).exists()
    assert list(Link.objects.values_list("pk", flat=True)) == [link.pk]
