"""crossfk.testing's guardrails: each rule raises before its statement runs,
naming the aliases, the tables and the fix; what does not count; the escape
hatch; the mixin and the pytest option.

The suite runs with ``crossfk_guard = true``; the tests enter
``guard_cross_database()`` themselves all the same (a guard inside another
does nothing more), so that they hold under ``--no-crossfk-guard`` too.
"""

import inspect
import textwrap

import pytest
from django.db import connections, transaction
from django.test import TestCase, override_settings

import crossfk
from crossfk.exceptions import CrossDBTransactionError
from crossfk.guardrails import is_guarded, table_aliases
from crossfk.parallel import run_per_alias
from crossfk.testing import (
    CrossDatabaseError,
    CrossDatabaseGuardMixin,
    allow_cross_database,
    allowances,
    assert_queries_per_db,
    guard_cross_database,
)
from tests.factories import LinkFactory, PostFactory
from tests.testapp.models import Link, Post

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])

HINT = (
    "(crossfk.testing.guard_cross_database; wrap code that does this on purpose "
    "in crossfk.testing.allow_cross_database(reason=...))"
)


def quoted(alias, *tables):
    quote = connections[alias].ops.quote_name
    return [quote(table) for table in tables]


# Writes inside another database's transaction --------------------------------


def test_write_inside_another_alias_atomic_raises():

    with (
        guard_cross_database(),
        pytest.raises(CrossDatabaseError) as caught,
        transaction.atomic(),  # on "default"
    ):
        Link.objects.create(url="https://a.example")

    assert str(caught.value) == (
        "INSERT of \"testapp_link\" on 'secondary' while 'default' is inside "
        "transaction.atomic(using='default'), which 'secondary' is not part "
        "of: a rollback there would leave this write in place. Open the block "
        "with crossfk.atomic('default', 'secondary') so that the databases "
        f"commit or roll back together, or write outside it. {HINT}"
    )


def test_write_outside_the_crossfk_atomic_open_elsewhere_raises():
    with (
        guard_cross_database(),
        pytest.raises(CrossDatabaseError) as caught,
        crossfk.atomic("secondary"),
    ):
        Post.objects.filter(pk=1).update(title="renamed")

    assert str(caught.value) == (
        "UPDATE of \"testapp_post\" on 'default' while 'secondary' is inside "
        "crossfk.atomic('secondary'), which 'default' is not part of: a "
        "rollback there would leave this write in place. Open the block with "
        "crossfk.atomic('secondary', 'default') so that the databases commit "
        f"or roll back together, or write outside it. {HINT}"
    )


@pytest.mark.django_db(databases=["default", "tenant_1", "tenant_3"])
def test_a_crossfk_atomic_open_on_several_aliases_is_named_once():
    with (
        guard_cross_database(),
        pytest.raises(CrossDatabaseError) as caught,
        crossfk.atomic("default", "tenant_1"),
        connections["tenant_3"].cursor() as cursor,
    ):
        cursor.execute("INSERT INTO audit (x) VALUES (1)")

    assert str(caught.value).startswith(
        "INSERT of \"audit\" on 'tenant_3' while 'default', 'tenant_1' are "
        "inside crossfk.atomic('default', 'tenant_1'), which 'tenant_3' is not "
        "part of:"
    )


def test_writes_inside_one_crossfk_atomic_over_both_pass():
    with guard_cross_database(), crossfk.atomic("default", "secondary"):
        link = LinkFactory()
        with transaction.atomic(using="default"):  # a savepoint inside it
            Post.objects.filter(pk=link.post_id).update(title="renamed")

    assert Link.objects.get().post.title == "renamed"


def test_the_transaction_a_test_case_wraps_around_the_test_does_not_count():
    assert connections["default"].in_atomic_block  # pytest-django's TestCase

    with guard_cross_database(), assert_queries_per_db({"secondary": 1}):
        Link.objects.create(url="https://a.example")


def test_reads_and_writes_to_the_alias_of_the_open_block_pass():
    post = PostFactory()

    with guard_cross_database(), transaction.atomic(using="default"):
        Post.objects.filter(pk=post.pk).update(title="renamed")
        assert Link.objects.filter(post_id=post.pk).count() == 0

    assert Post.objects.get().title == "renamed"


# crossfk's own writes over several databases -----------------------------------


def test_a_delete_across_databases_under_a_plain_atomic_is_refused_not_guarded():
    link = LinkFactory()

    with (
        guard_cross_database(),
        pytest.raises(CrossDBTransactionError, match="Nothing was written"),
        transaction.atomic(using="default"),
    ):
        link.post.delete()

    assert Link.objects.count() == 1


def test_a_delete_that_writes_one_database_under_its_plain_atomic_passes():
    post = PostFactory()

    with guard_cross_database(), transaction.atomic(using="default"):
        post.delete()

    assert Post.objects.count() == 0


def test_a_delete_across_databases_in_its_own_crossfk_atomic_passes():
    link = LinkFactory()

    with guard_cross_database():
        link.post.delete()

    assert Link.objects.count() == 0


# Tables on the wrong database, and tables of several -------------------------


def test_a_query_for_a_table_on_another_database_raises():
    with guard_cross_database(), pytest.raises(CrossDatabaseError) as caught:
        Post.objects.using("secondary").count()

    assert str(caught.value) == (
        "A SELECT on 'secondary' names \"testapp_post\", which lives in "
        "'default', not 'secondary': the router and the code disagree (a "
        "using('secondary'), db_manager('secondary') or a related instance's "
        "database?). Send it to 'default', where the router places it. "
        f"{HINT}"
    )


def test_one_statement_naming_tables_of_two_databases_raises():
    post, link = quoted("default", "testapp_post", "testapp_link")

    with (
        guard_cross_database(),
        pytest.raises(CrossDatabaseError) as caught,
        connections["default"].cursor() as cursor,
    ):
        cursor.execute(f"SELECT * FROM {link} JOIN {post} ON {post}.id = post_id")

    assert str(caught.value) == (
        "One SELECT on 'default' names tables of different databases: "
        "\"testapp_link\" (in 'secondary'), \"testapp_post\" (in 'default'). "
        "No database holds them all, so no server can run it: query each "
        "database on its own (a CrossDBForeignKey's lookups read the target's "
        f"database first, then filter by id). {HINT}"
    )


def test_tables_of_no_model_are_not_checked():
    with (
        guard_cross_database(),
        connections["secondary"].cursor() as cursor,
    ):
        cursor.execute(
            f"SELECT COUNT(*) FROM {quoted('secondary', 'django_migrations')[0]}"
        )
        assert cursor.fetchone()[0] > 0


def test_tables_the_routers_allow_everywhere_are_not_checked():
    with override_settings(DATABASE_ROUTERS=[]):
        assert table_aliases() == {}
    assert table_aliases()["testapp_link"] == {"secondary"}


@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
def test_the_workers_of_a_fan_out_are_guarded_too():
    def count_posts(alias):
        return Post.objects.using(alias).count()

    with guard_cross_database(), pytest.raises(CrossDatabaseError) as caught:
        run_per_alias(count_posts, ["default", "secondary"])

    assert "A SELECT on 'secondary' names \"testapp_post\"" in str(caught.value)
    assert caught.value.__notes__ == ["(in database 'secondary', asked with 1 more)"]


# The escape hatch ------------------------------------------------------------


def test_allow_cross_database_needs_a_reason():
    with pytest.raises(TypeError):
        allow_cross_database()
    with pytest.raises(TypeError):
        allow_cross_database("positional")
    with pytest.raises(ValueError, match=r'needs a reason="\.\.\."'):
        allow_cross_database(reason="  ")


def test_allow_cross_database_lets_the_statement_through_and_counts_it():
    reason = "a test of the escape hatch writes across on purpose"
    line = inspect.currentframe().f_lineno + 1
    hatch = allow_cross_database(reason=reason)

    for _ in range(2):
        with guard_cross_database(), hatch, transaction.atomic(using="default"):
            Link.objects.create(url="https://a.example")

    [allowance] = [a for a in allowances() if a.reason == reason]
    assert allowance.location == f"tests/test_guardrails.py:{line}"
    assert (allowance.uses, allowance.excused) == (2, 2)
    assert Link.objects.count() == 2


# The mixin -------------------------------------------------------------------


class GuardedTestCaseTests(CrossDatabaseGuardMixin, TestCase):
    databases = {"default", "secondary"}

    def test_writes_across_databases_outside_blocks_pass(self):
        self.assertTrue(is_guarded())
        LinkFactory()
        self.assertEqual(Link.objects.count(), 1)

    def test_a_write_inside_another_alias_atomic_fails(self):
        with (
            self.assertRaisesMessage(
                CrossDatabaseError, "crossfk.atomic('default', 'secondary')"
            ),
            transaction.atomic(using="default"),
        ):
            Link.objects.create(url="https://a.example")


# The pytest plugin -----------------------------------------------------------

INNER_SETTINGS = """
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        },
        INSTALLED_APPS=[],
    )
    django.setup()
"""

INNER_TESTS = """
    import pytest
    from django.db import connections, transaction


    def write_other_inside_default():
        with transaction.atomic(using="default"), connections["other"].cursor() as c:
            c.execute("CREATE TABLE IF NOT EXISTS t (x integer)")
            c.execute("INSERT INTO t VALUES (1)")


    def test_writes_across():
        write_other_inside_default()


    @pytest.mark.allow_cross_database(reason="on purpose")
    def test_writes_across_on_purpose():
        write_other_inside_default()
"""

INNER_UNITTEST = """
    import unittest

    from crossfk.testing import CrossDatabaseGuardMixin
    from test_inner import write_other_inside_default


    class Guarded(CrossDatabaseGuardMixin, unittest.TestCase):
        def test_writes_across(self):
            write_other_inside_default()
"""


@pytest.fixture
def inner(pytester):
    pytester.makeconftest(INNER_SETTINGS)
    pytester.makepyfile(test_inner=textwrap.dedent(INNER_TESTS))
    return pytester


def run_inner(inner, *args):
    return inner.runpytest_subprocess(
        "-p", "no:django", "-p", "no:cacheprovider", "test_inner.py", *args
    )  # fmt: skip


def test_the_pytest_option_guards_each_test(inner):
    result = run_inner(inner, "--crossfk-guard")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CrossDatabaseError: INSERT of \"t\" on 'other' while 'default' is "
            "inside transaction.atomic(using='default')*",
            "*= crossfk: 1 cross-database allowances, entered 1 times =*",
            "1 x on purpose (test_inner.py::test_writes_across_on_purpose; "
            "1 statements excused)",
        ]
    )


def test_without_the_option_no_test_is_guarded(inner):
    result = run_inner(inner)

    result.assert_outcomes(passed=2)
    assert "crossfk:" not in result.stdout.str()


def test_the_ini_option_guards_and_the_command_line_wins(inner):
    inner.makeini("[pytest]\ncrossfk_guard = true\n")

    run_inner(inner).assert_outcomes(passed=1, failed=1)
    run_inner(inner, "--no-crossfk-guard").assert_outcomes(passed=2)


def test_the_mixin_guards_a_unittest_test_case_without_the_option(inner):
    inner.makepyfile(test_mixin=textwrap.dedent(INNER_UNITTEST))

    result = inner.runpytest_subprocess("-p", "no:django", "test_mixin.py")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CrossDatabaseError: INSERT of \"t\" on 'other'*"])
