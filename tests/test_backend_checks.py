"""The checks that say which guarantees a database's backend lacks."""

import pytest
from django.db import connections

from crossfk.checks import check_row_locks, check_transactional_tables
from tests.testapp.models import Post, ProtectedLink


def test_every_backend_of_the_suite_keeps_references_safe():
    assert check_row_locks() == []


def test_a_backend_crossfk_takes_no_row_locks_on_is_named(monkeypatch):
    # No third backend runs here: the check reads only the vendor's name.
    secondary = connections["secondary"]
    monkeypatch.setattr(secondary, "vendor", "oracle")
    monkeypatch.setattr(secondary, "display_name", "Oracle")

    [warning] = check_row_locks()

    assert warning.id == "crossfk.W006"
    assert warning.msg.startswith(
        "Database 'secondary' uses the Oracle backend, on which crossfk takes "
        "no row locks: a reference written while another transaction deletes "
        "its target can be left dangling"
    )
    assert "crossfk_check" in warning.hint


@pytest.mark.vendors(default="mysql", secondary="mysql")
@pytest.mark.django_db(databases=["default", "secondary"], transaction=True)
def test_a_table_without_transactions_on_mariadb_is_named():
    link_table, post_table = ProtectedLink._meta.db_table, Post._meta.db_table
    assert check_transactional_tables(databases=["default", "secondary"]) == []

    with connections["secondary"].cursor() as cursor:
        cursor.execute(f"ALTER TABLE {link_table} ENGINE=MyISAM")
    try:
        messages = check_transactional_tables(databases=["default", "secondary"])
    finally:
        with connections["secondary"].cursor() as cursor:
            cursor.execute(f"ALTER TABLE {link_table} ENGINE=InnoDB")

    assert [m.id for m in messages] == ["crossfk.W007"]
    assert messages[0].msg.startswith(
        f"Table {link_table} in database 'secondary' uses the MyISAM storage "
        f"engine, which has no transactions"
    )
    assert messages[0].hint == f"ALTER TABLE {link_table} ENGINE=InnoDB;"
    # The target's table, on "default", is InnoDB: not named.
    assert post_table not in " ".join(m.msg for m in messages)
