"""``crossfk_move``: a model's table moved to another database, rows and all.

``Memo`` lives in "default"; each test moves it to "secondary" and drops the
copy again afterwards. Real commits: the command writes in its own blocks.
"""

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import override_settings

from crossfk.checks import check_tables
from tests.testapp.models import Memo

# The command looks for the table in every database.
pytestmark = [
    pytest.mark.django_db(databases="__all__", transaction=True),
    pytest.mark.allow_cross_database(
        reason="crossfk_move writes a model's table in the database it moves "
        "to, and the tests read both copies, before and after the move"
    ),
]

WRITTEN = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def table_in(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        return Memo._meta.db_table in connections[alias].introspection.table_names(
            cursor
        )


@pytest.fixture
def memos():
    """Five memos written long ago, and no Memo table in "secondary" after."""
    Memo.objects.bulk_create(Memo(text=f"memo {i}") for i in range(5))
    Memo.objects.update(written=WRITTEN)
    yield list(Memo.objects.order_by("pk").values_list("pk", "text", "written"))
    if table_in("secondary"):
        with connections["secondary"].schema_editor() as editor:
            editor.delete_model(Memo)


def move(*arguments) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command(
        "crossfk_move", "testapp.Memo", "--to", "secondary", *arguments,
        stdout=stdout, stderr=stderr,
    )  # fmt: skip
    return stdout.getvalue(), stderr.getvalue()


def rows_in(alias: str) -> list[tuple]:
    return list(
        Memo._base_manager.using(alias)
        .order_by("pk")
        .values_list("pk", "text", "written")
    )


def test_move_creates_the_table_and_copies_every_row_as_it_is(memos):
    stdout, stderr = move("--batch-size", "2")

    assert rows_in("secondary") == memos  # auto_now left alone: a copy
    assert "created testapp_memo in 'secondary'" in stdout
    assert "testapp_memo: 5 rows, checksum" in stdout
    assert stderr.splitlines() == [
        "  testapp_memo: copied 2/5",
        "  testapp_memo: copied 4/5",
        "  testapp_memo: copied 5/5",
    ]
    assert "CROSSFK_PARTITIONS = {'testapp.Memo': 'secondary'}" in stdout
    table = connections["default"].ops.quote_name("testapp_memo")
    assert f"DROP TABLE {table};" in stdout
    assert rows_in("default") == memos  # the old table is left in place


def test_move_run_again_copies_only_the_rows_written_since(memos):
    move()
    later = Memo.objects.create(text="written since")

    stdout, stderr = move()

    assert f"resuming after pk {memos[-1][0]}" in stdout
    assert stderr.splitlines() == ["  testapp_memo: copied 1/1"]
    assert [row[:2] for row in rows_in("secondary")][-1] == (later.pk, later.text)
    assert len(rows_in("secondary")) == 6


def test_move_refuses_when_the_copy_differs(memos):
    move()
    Memo._base_manager.using("secondary").filter(pk=memos[0][0]).update(text="edited")

    with pytest.raises(CommandError, match=r"Rows in 'secondary' differ from"):
        move()


def test_move_resets_the_sequence_of_the_new_table(memos):
    move()

    created = Memo._base_manager.using("secondary").create(text="new there")

    assert created.pk > memos[-1][0]


def test_move_says_where_the_table_is_when_it_cannot_tell(memos):
    with pytest.raises(CommandError, match="not a key of DATABASES"):
        call_command("crossfk_move", "testapp.Memo", "--to", "nope")
    with pytest.raises(CommandError, match="in 'default' already"):
        call_command("crossfk_move", "testapp.Memo", "--to", "default")


def test_check_warns_of_a_table_missing_where_the_model_is_placed(memos):
    with override_settings(CROSSFK_PARTITIONS={"testapp.Memo": "secondary"}):
        [warning] = check_tables(databases=["secondary"])
        assert warning.id == "crossfk.W005"
        assert warning.msg == (
            "testapp.Memo is placed in database 'secondary', where the "
            "migrations of 'testapp' are applied, but its table testapp_memo "
            "is not there."
        )
        assert "crossfk_move testapp.Memo --to secondary" in warning.hint
        move()
        assert check_tables(databases=["secondary"]) == []
    assert check_tables(databases=["default", "secondary"]) == []
