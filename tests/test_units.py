"""The pure logic, on its own: commit order, path walking, the recovery
decision, and the SQL an id set becomes on each backend."""

from collections import Counter
from types import SimpleNamespace

import pytest
from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQL
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLite
from django.db.models import IntegerField, UUIDField

from crossfk import transaction
from crossfk.idsets import IdSet
from crossfk.management.commands.crossfk_recover import decided_to_commit
from crossfk.paths import cross_step, reads_own_column
from tests.testapp.models import Link, Post, Tag


def references(monkeypatch, *pairs):
    """Pretend the installed cross relations are ``(target, source)`` pairs."""
    fields = [
        SimpleNamespace(target_aliases=(t,), referencing_aliases=(s,)) for t, s in pairs
    ]
    monkeypatch.setattr(transaction, "cross_foreign_keys", lambda: fields)


# Commit order -----------------------------------------------------------------


def test_referenced_databases_commit_before_the_ones_referencing_them(monkeypatch):
    references(monkeypatch, ("users", "events"), ("events", "audit"))
    assert transaction.reference_order(["audit", "events", "users"]) == [
        "users",
        "events",
        "audit",
    ]


def test_a_cycle_starts_with_the_database_referencing_the_others_least(monkeypatch):
    # b refers to a's rows through two relations, a to b's through one: a
    # commits first, leaving one relation exposed to a crash, not two.
    references(monkeypatch, ("a", "b"), ("a", "b"), ("b", "a"))
    assert transaction.reference_order(["a", "b"]) == ["a", "b"]
    assert transaction.reference_order(["b", "a"]) == ["a", "b"]


def test_unrelated_databases_keep_the_callers_order(monkeypatch):
    references(monkeypatch)
    assert transaction.reference_order(["z", "y", "x"]) == ["z", "y", "x"]


def block_that_declared(monkeypatch, written=(), locked=(), deletes=()):
    """A ``crossfk.atomic("users", "events")``, events referencing users,
    that crossfk told what it did; it is not entered."""
    references(monkeypatch, ("users", "events"))
    block = transaction.CrossAtomic(("events", "users"), True, False, False)
    block.written, block.locked = set(written), set(locked)
    block.deletes = Counter(deletes)
    return block


def test_targets_written_commit_before_the_references(monkeypatch):
    block = block_that_declared(monkeypatch, written={"users", "events"})
    assert block.commit_order() == ["users", "events"]


def test_targets_only_locked_commit_after_the_references(monkeypatch):
    block = block_that_declared(monkeypatch, written={"events"}, locked={"users"})
    assert block.commit_order() == ["events", "users"]


def test_targets_locked_and_written_commit_before_the_references(monkeypatch):
    block = block_that_declared(
        monkeypatch, written={"users", "events"}, locked={"users"}
    )
    assert block.commit_order() == ["users", "events"]


def test_a_delete_commits_the_references_first(monkeypatch):
    block = block_that_declared(
        monkeypatch, written={"users"}, locked={"users"}, deletes=[("users", "events")]
    )
    assert block.commit_order() == ["events", "users"]


def test_a_delete_is_ordered_by_the_relations_it_followed(monkeypatch):
    block = block_that_declared(monkeypatch, deletes=[("users", "events")])
    # Two relations the other way (deferred, say): reversing the order of
    # every relation would commit "users" first.
    both_ways = [("users", "events"), ("events", "users"), ("events", "users")]
    references(monkeypatch, *both_ways)
    assert transaction.reference_order(["events", "users"])[::-1] == ["users", "events"]
    assert block.commit_order() == ["events", "users"]


def test_databases_without_references_between_them_commit_in_one_step(monkeypatch):
    references(
        monkeypatch,
        ("users", "tenant_a"),
        ("users", "tenant_b"),
        ("users", "tenant_c"),
        ("tenant_b", "tenant_c"),
    )
    block = transaction.CrossAtomic((), True, False, False)
    block.written, block.locked, block.deletes = set(), set(), Counter()
    order = ["tenant_a", "tenant_b", "tenant_c", "users"]
    assert block.commit_steps(order) == [
        ["tenant_a", "tenant_b"],
        ["tenant_c"],
        ["users"],
    ]
    references(monkeypatch, ("users", "tenant_a"), ("users", "tenant_b"))
    assert block.commit_steps(order) == [
        ["tenant_a", "tenant_b", "tenant_c"],
        ["users"],
    ]


def test_databases_keeping_their_locks_commit_in_a_step_of_their_own(monkeypatch):
    references(monkeypatch)
    block = transaction.CrossAtomic((), True, False, False)
    block.written, block.locked = {"events", "audit"}, {"users", "plans", "audit"}
    block.deletes = Counter()
    order = ["events", "audit", "users", "plans"]
    assert block.commit_steps(order) == [["events", "audit"], ["users", "plans"]]


# Path walking -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "path", "expected"),
    [
        (Link, "post__title", ("", "post", False, "title")),
        (Link, "post__author__name", ("", "post", False, "author__name")),
        (Tag, "link__post__title", ("link", "post", False, "title")),
        (Post, "links__url", ("", "post", True, "url")),
        (Post, "links", ("", "post", True, "")),
        (Link, "pk", None),
    ],
)
def test_cross_step_finds_the_first_step_across(model, path, expected):
    step = cross_step(model, path)
    found = step and (step.prefix, step.field.name, step.is_reverse, step.rest)
    assert found == expected


@pytest.mark.parametrize("path", ["url", "tags__name", "nope", "url__startswith"])
def test_paths_that_stay_in_their_database_have_no_cross_step(path):
    assert cross_step(Link, path) is None


@pytest.mark.parametrize(
    ("path", "local"),
    [
        ("post", True),
        ("post__id", True),
        ("post__pk", True),
        ("post__in", True),
        ("post__isnull", True),
        ("post__id__gt", True),
        ("post__title", False),
        ("post__title__startswith", False),
    ],
)
def test_a_path_ending_on_the_stored_id_reads_the_local_column(path, local):
    assert reads_own_column(cross_step(Link, path)) is local


# The recovery decision ----------------------------------------------------------


@pytest.mark.parametrize(
    ("prepared", "count", "commit"),
    [
        ({1, 2}, 2, True),  # all prepared: the commit was decided
        ({2}, 2, True),  # the first committed: finish the rest
        ({1}, 2, False),  # preparing never finished: roll back
        ({1, 2}, 3, False),
        ({3}, 3, True),
    ],
)
def test_recover_commits_only_what_was_decided(prepared, count, commit):
    assert decided_to_commit(prepared, count) is commit


# Id sets on each backend ----------------------------------------------------------


def backend(wrapper_class):
    return wrapper_class({"NAME": "x", "TIME_ZONE": None}, alias="x")


def test_an_id_set_is_one_json_parameter_on_sqlite():
    connection = backend(SQLite)
    sql, params = IdSet([3, 1, 3], IntegerField()).as_sqlite(None, connection)
    assert (sql, params) == ("SELECT value FROM json_each(%s)", ["[3, 1]"])


def test_an_id_set_is_one_typed_array_on_postgresql():
    connection = backend(PostgreSQL)
    sql, params = IdSet([3, 1], IntegerField()).as_postgresql(None, connection)
    assert (sql, params) == ("SELECT unnest(%s::integer[])", [[3, 1]])
    uuids = IdSet(["00000000-0000-0000-0000-000000000001"], UUIDField())
    assert uuids.as_postgresql(None, connection)[0] == "SELECT unnest(%s::uuid[])"


def test_an_id_set_is_a_parameter_list_elsewhere_without_out_of_range_ids():
    connection = backend(PostgreSQL)
    sql, params = IdSet([1, 2**40, 2], IntegerField()).as_sql(None, connection)
    assert (sql, params) == ("%s, %s", [1, 2])
