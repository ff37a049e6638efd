"""``manage.py demo``: seed the two-database blog and report, database by
database, where the rows live, what reading across the boundary costs in
queries, and what a delete does on the other side.

``manage.py demo --serve [ADDR:PORT]`` then serves the blog: a page listing
the links with their posts, and the admin (with a demo superuser)."""

from collections.abc import Callable

import django
import factory.random
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connections
from shop import report as tenants_report

from blog.factories import LinkFactory, PostFactory
from blog.models import Link, Post
from blog.querycount import count_queries

MODELS = (Post, Link)

# The same fake text on every run, so that the report can be compared.
FAKER_SEED = "crossfk-demo"

# The site is for trying crossfk on a laptop, never for a public address.
DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"
DEFAULT_ADDRPORT = "127.0.0.1:8000"


def existing_tables(alias: str) -> list[str]:
    """The blog tables found in the database itself, not where we expect them."""
    present = set(connections[alias].introspection.table_names())
    return [model._meta.db_table for model in MODELS if model._meta.db_table in present]


def empty_blog_tables() -> None:
    """Empty the blog tables and restart their ids, so every run reads alike."""
    for alias in connections:
        connection = connections[alias]
        statements = connection.ops.sql_flush(
            no_style(), existing_tables(alias), reset_sequences=True
        )
        connection.ops.execute_sql_flush(statements)


def format_table(header: list[str], rows: list[list]) -> str:
    """Align columns: text to the left, numbers to the right."""
    columns = list(zip(header, *rows, strict=True))
    widths = [max(len(str(cell)) for cell in column) for column in columns]
    is_numeric = [all(isinstance(cell, int) for cell in col[1:]) for col in columns]
    lines = []
    for row in [header, *rows]:
        cells = [
            str(cell).rjust(width) if numeric else str(cell).ljust(width)
            for cell, width, numeric in zip(row, widths, is_numeric, strict=True)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def count_of(noun: str) -> Callable[[list], str]:
    return lambda rows: f"{len(rows)} {noun}"


def list_links(queryset) -> list[str]:
    """What a page listing links with their post would render."""
    return [f"{link.title} -> {link.post.title}" for link in queryset]


class Command(BaseCommand):
    help = (
        "Migrate both databases, seed the blog with factories, and print the "
        "queries each database runs for crossfk's reads, filters and deletes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--posts", type=int, default=5, help="Posts to create.")
        parser.add_argument(
            "--links-per-post", type=int, default=3, help="Links to create per post."
        )
        parser.add_argument(
            "--tenants",
            type=int,
            default=0,
            metavar="N",
            help="Instead of the blog: customers in 'default' and their orders "
            "in N tenant databases (set by ./demo/run).",
        )
        parser.add_argument(
            "--serve",
            nargs="?",
            const=DEFAULT_ADDRPORT,
            metavar="ADDR:PORT",
            help=(
                "After the report, create the superuser "
                f"{DEMO_USERNAME}/{DEMO_PASSWORD} and serve the blog and its "
                f"admin until interrupted (default {DEFAULT_ADDRPORT})."
            ),
        )

    def handle(
        self,
        *args,
        posts: int,
        links_per_post: int,
        tenants: int,
        serve: str | None,
        **options,
    ):
        if tenants:
            if tenants != settings.TENANT_COUNT:
                raise CommandError(
                    f"--tenants {tenants}: run it as ./demo/run --tenants {tenants}, "
                    f"which puts the tenant databases in DATABASES."
                )
            tenants_report.report(self.write, format_table, customers=posts)
            return
        self.report(posts, links_per_post)
        if serve:
            self.serve(serve)

    def report(self, posts: int, links_per_post: int) -> None:
        call_command("migrate_all", verbosity=0, interactive=False)
        empty_blog_tables()
        factory.random.reseed_random(FAKER_SEED)
        self.aliases = list(connections)
        self.steps = []

        self.write(
            f"crossfk demo: {posts} posts x {links_per_post} links, "
            f"Django {django.get_version()}, SQLite",
            "",
        )
        created = self.run_step(
            "seed with PostFactory, LinkFactory",
            lambda: self.seed(posts, links_per_post),
            lambda created: f"{len(created)} posts, {Link.objects.count()} links",
        )
        self.write_placement()
        if not created:
            return

        self.run_step(
            "list links, naive link.post (N+1)",
            lambda: list_links(Link.objects.all()),
            count_of("links"),
        )
        self.run_step(
            'list links, prefetch_cross("post")',
            lambda: list_links(Link.objects.prefetch_cross("post")),
            count_of("links"),
        )
        self.run_step(
            'list posts, prefetch_cross("links")',
            lambda: [
                (post.title, [link.url for link in post.links.all()])
                for post in Post.objects.prefetch_cross("links")
            ],
            count_of("posts"),
        )
        if django.VERSION >= (6, 1):
            from django.db.models import FETCH_PEERS

            self.run_step(
                "list links, fetch_mode(FETCH_PEERS)",
                lambda: list_links(Link.objects.fetch_mode(FETCH_PEERS)),
                count_of("links"),
            )
        prefix = created[0].title.split()[0]
        matching = self.run_step(
            f"filter(post__title__startswith={prefix!r})",
            lambda: Link.objects.filter(post__title__startswith=prefix),
            lambda queryset: "lazy: no query yet",
        )
        self.run_step("  ...evaluated", lambda: list(matching), count_of("links"))
        self.write("Queries per database", self.format_steps())
        self.write(
            "  Seeding checks each link's post exists in 'default' (enforce=True).",
            "",
        )
        self.write_delete(created[0])

    def write(self, *lines: str) -> None:
        for line in lines:
            self.stdout.write(line)

    def seed(self, posts: int, links_per_post: int) -> list[Post]:
        created = PostFactory.create_batch(posts)
        for post in created:
            LinkFactory.create_batch(links_per_post, post=post)
        return created

    def run_step(self, label: str, action: Callable, summarize: Callable):
        """Run ``action``, keep its query count per alias, return its result."""
        with count_queries() as counts:
            result = action()
        query_counts = [counts[alias] for alias in self.aliases]
        self.steps.append([label, *query_counts, summarize(result)])
        return result

    def format_steps(self) -> str:
        return format_table(["step", *self.aliases, "result"], self.steps)

    def write_placement(self) -> None:
        rows = []
        for alias in self.aliases:
            for table in existing_tables(alias):
                model = next(m for m in MODELS if m._meta.db_table == table)
                count = model._base_manager.using(alias).count()
                rows.append([alias, table, model._meta.label, count])
        self.write(
            "Where the rows live (blog tables found in each database)",
            format_table(["database", "table", "model", "rows"], rows),
            "",
        )

    def write_delete(self, post: Post) -> None:
        """Delete a post and show its links gone from the other database."""
        before = {model: model.objects.count() for model in MODELS}
        with count_queries() as counts:
            deleted = post.delete()
        rows = [
            [
                model.objects.db,
                model._meta.label,
                before[model],
                model.objects.count(),
                counts[model.objects.db],
            ]
            for model in MODELS
        ]
        self.write(
            f"Delete post {post.title!r} (Link.post has on_delete=CASCADE)",
            format_table(["database", "model", "before", "after", "queries"], rows),
            f"  post.delete() returned {deleted}",
            "  Queries include BEGIN and COMMIT: crossfk.atomic spans both databases.",
        )

    def serve(self, addrport: str) -> None:
        """Serve the blog with runserver, without the autoreloader: the
        seeding above must not run again in a child process."""
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
        user.is_staff = user.is_superuser = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        # runserver takes a bare port too, on its default address.
        address = addrport if ":" in addrport else f"127.0.0.1:{addrport}"
        self.write(
            "",
            f"Serving the blog on http://{address}/ (Ctrl-C to stop):",
            "  /         the links with their posts, queries per database",
            f"  /admin/   Post and Link; log in as {DEMO_USERNAME} / {DEMO_PASSWORD}",
            "",
        )
        call_command("runserver", addrport, use_reloader=False)
