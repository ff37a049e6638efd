"""The demo site in a real browser: the admin writes a Link in "secondary"
pointing at a Post in "default", the listing page reads both back, and a
post deleted in the admin takes its links out of the other database file."""

import sqlite3
from contextlib import closing
from pathlib import Path

from playwright.sync_api import Page, expect

from tests_e2e.conftest import DemoServer


def query(database: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read a database file directly, not through Django or the server."""
    uri = f"file:{database}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as connection:
        return connection.execute(sql, params).fetchall()


def choose_in_autocomplete(page: Page, field: str, text: str) -> None:
    """Pick ``text`` in the admin's select2 widget for ``field``."""
    page.locator(f".field-{field} .select2-selection").click()
    # Opening the widget lists the first page unfiltered; the option must be
    # clicked from the answer to the search, or select2 aborts that request
    # when the dropdown closes.
    with page.expect_response(
        lambda response: "/autocomplete/" in response.url and "term=" in response.url
    ):
        page.locator(".select2-search__field").fill(text)
    page.locator(".select2-results__option", has_text=text).click()


def test_link_added_in_admin_is_listed_with_its_post(
    admin_page: Page,
    failed_responses: list[str],
    demo_server: DemoServer,
    tmp_path: Path,
):
    page = admin_page
    [(post_id, post_title)] = query(
        demo_server.primary, "SELECT id, title FROM blog_post ORDER BY id LIMIT 1"
    )
    link_title = "Multiple databases in Django"
    link_url = "https://docs.djangoproject.com/en/stable/topics/db/multi-db/"

    page.goto(f"{demo_server.url}/admin/blog/link/add/")
    page.fill("#id_url", link_url)
    page.fill("#id_title", link_title)
    choose_in_autocomplete(page, "post", post_title)
    expect(page.locator("#id_post")).to_have_value(str(post_id))
    page.click("input[name=_save]")

    page.wait_for_url(f"{demo_server.url}/admin/blog/link/")
    expect(page.locator(".messagelist .success")).to_contain_text(link_title)
    changelist_row = page.locator("#result_list tbody tr", has_text=link_title)
    expect(changelist_row).to_contain_text(post_title)
    assert query(
        demo_server.secondary,
        "SELECT url, title, post_id FROM blog_link WHERE title = ?",
        (link_title,),
    ) == [(link_url, link_title, post_id)]

    page.goto(f"{demo_server.url}/")
    listed_row = page.locator("#links tbody tr", has_text=link_title)
    expect(listed_row.locator(".post")).to_have_text(post_title)
    expect(listed_row.locator(".url")).to_have_text(link_url)
    # prefetch_cross: one query on each database for the whole list.
    expect(page.locator("#query-counts .count")).to_have_count(2)
    for alias in ("default", "secondary"):
        count = page.locator(f'#query-counts .count[data-alias="{alias}"]')
        expect(count).to_have_text("1")
    page.screenshot(path=tmp_path / "links.png", full_page=True)
    assert failed_responses == []


def test_post_deleted_in_admin_takes_its_links_from_the_other_database(
    admin_page: Page, failed_responses: list[str], demo_server: DemoServer
):
    page = admin_page
    [(post_id, post_title)] = query(
        demo_server.primary, "SELECT id, title FROM blog_post ORDER BY id LIMIT 1"
    )
    link_titles = [
        title
        for (title,) in query(
            demo_server.secondary,
            "SELECT title FROM blog_link WHERE post_id = ? ORDER BY id",
            (post_id,),
        )
    ]
    [(links_before,)] = query(demo_server.secondary, "SELECT COUNT(*) FROM blog_link")
    assert link_titles, "the demo seeds links for every post"

    page.goto(f"{demo_server.url}/admin/blog/post/{post_id}/change/")
    page.click("a.deletelink")
    page.wait_for_url(f"{demo_server.url}/admin/blog/post/{post_id}/delete/")
    # The confirmation lists the links that go with the post, although they
    # live in the other database.
    deleted_objects = page.locator("#deleted-objects")
    expect(deleted_objects).to_contain_text(f"Post: {post_title}")
    for title in link_titles:
        expect(deleted_objects).to_contain_text(f"Link: {title}")
    expect(page.locator("#content")).to_contain_text(f"Links: {len(link_titles)}")
    page.click("#content input[type=submit]")

    page.wait_for_url(f"{demo_server.url}/admin/blog/post/")
    expect(page.locator(".messagelist .success")).to_contain_text(post_title)
    posts_left = query(demo_server.primary, "SELECT id FROM blog_post")
    links_left = query(demo_server.secondary, "SELECT post_id FROM blog_link")
    assert (post_id,) not in posts_left
    assert (post_id,) not in links_left
    assert len(links_left) == links_before - len(link_titles)

    page.goto(f"{demo_server.url}/")
    expect(page.locator("#links tbody tr")).to_have_count(len(links_left))
    expect(page.locator("#links .post", has_text=post_title)).to_have_count(0)
    assert failed_responses == []


def test_plain_admin_searches_and_filters_links_by_their_post(
    admin_page: Page, failed_responses: list[str], demo_server: DemoServer
):
    page = admin_page
    [(post_id, post_title)] = query(
        demo_server.primary, "SELECT id, title FROM blog_post ORDER BY id LIMIT 1"
    )
    link_titles = sorted(
        title
        for (title,) in query(
            demo_server.secondary,
            "SELECT title FROM blog_link WHERE post_id = ?",
            (post_id,),
        )
    )

    # search_fields reaches the post's title in the other database.
    page.goto(f"{demo_server.url}/admin/blog/link/")
    page.fill("#searchbar", post_title)
    page.press("#searchbar", "Enter")
    page.wait_for_url("**/admin/blog/link/?q=*")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(len(link_titles))
    for row in rows.all():
        expect(row.locator(".field-post")).to_have_text(post_title)

    # list_filter lists the posts of the other database and filters by one.
    page.goto(f"{demo_server.url}/admin/blog/link/")
    page.locator("#changelist-filter a", has_text=post_title).first.click()
    page.wait_for_url(f"**/admin/blog/link/?post__id__exact={post_id}")
    expect(page.locator("#result_list tbody tr")).to_have_count(len(link_titles))
    shown = sorted(page.locator("#result_list tbody tr .field-title").all_inner_texts())
    assert shown == link_titles
    assert failed_responses == []
