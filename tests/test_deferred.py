"""Deferred referential actions: what a delete records, what the worker applies."""

import re
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from crossfk import DEFERRED_SET_NULL
from crossfk.cleanup import backlog, clean_up
from crossfk.models import PendingCleanup
from crossfk.testing import assert_queries_per_db
from tests.deferred.models import (
    PLACEHOLDER,
    Article,
    Comment,
    Flag,
    Mark,
    Pin,
    Reply,
    Vote,
)
from tests.deferred.rows import article_with_children

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


def outbox(alias="default"):
    return sorted(PendingCleanup.objects.using(alias).values_list("relation", "target"))


def test_delete_records_one_outbox_row_per_target_and_relation():
    article, section = article_with_children()
    pk, section_pk = article.pk, section.pk
    # Select the sections, then (in a savepoint) delete, and insert the outbox
    # rows in one statement; nothing is asked of "secondary".
    with assert_queries_per_db({"default": 6, "secondary": 0}):
        deleted = article.delete()
    assert deleted == (2, {"deferred.Section": 1, "deferred.Article": 1})
    assert outbox() == [
        ("deferred.Comment.article", str(pk)),
        ("deferred.Mark.article", str(pk)),
        ("deferred.Vote.section", str(section_pk)),
    ]
    assert outbox("secondary") == []
    assert Comment.objects.count() == 2  # untouched until the worker runs


def test_queryset_delete_records_every_target():
    first, _ = article_with_children("a")
    second, _ = article_with_children("b")
    Article.objects.filter(pk__in=[first.pk, second.pk]).delete()
    comment_targets = [t for r, t in outbox() if r == "deferred.Comment.article"]
    assert sorted(comment_targets) == sorted([str(first.pk), str(second.pk)])


def test_rolled_back_delete_records_nothing():
    article, _ = article_with_children()
    pk = article.pk
    with pytest.raises(RuntimeError), transaction.atomic(using="default"):
        article.delete()
        assert len(outbox()) == 3
        raise RuntimeError
    assert outbox() == []
    assert Article.objects.filter(pk=pk).exists()


def test_cleanup_applies_each_action():
    article, _ = article_with_children()
    kept, _ = article_with_children("kept", comments=1)
    article.delete()
    progress = clean_up()
    assert progress.finished == 3
    assert outbox() == []
    assert list(Comment.objects.values_list("article_id", flat=True)) == [kept.pk]
    assert Reply.objects.count() == 1
    assert Flag.objects.count() == 1  # the deleted comments' flags, across again
    votes = dict(Vote.objects.values_list("pk", "section_id"))
    assert sorted(votes.values(), key=str) == sorted(
        [None, kept.sections.get().pk], key=str
    )
    placeholder = Article.objects.get(title=PLACEHOLDER)
    assert sorted(Mark.objects.values_list("article_id", flat=True)) == sorted(
        [placeholder.pk, kept.pk]
    )
    assert progress.rows == {
        "deferred.Comment": 2,
        "deferred.Reply": 2,
        "deferred.Flag": 2,
        "deferred.Vote": 1,
        "deferred.Mark": 1,
    }


def test_cleanup_works_in_batches():
    article = Article.objects.create(title="big")
    Comment.objects.bulk_create(Comment(article=article) for _ in range(25))
    article.delete()
    progress = clean_up(batch_size=10)
    assert progress.batches == 3
    assert Comment.objects.count() == 0
    assert outbox() == []


def test_a_target_key_in_use_again_keeps_its_references():
    article = Article.objects.create(title="again")
    Comment.objects.create(article=article)
    PendingCleanup.objects.using("default").create(
        relation="deferred.Comment.article", target=str(article.pk)
    )
    clean_up()
    assert Comment.objects.filter(article_id=article.pk).count() == 1
    assert outbox() == []


def test_time_limit_leaves_the_rest():
    article, _ = article_with_children()
    article.delete()
    progress = clean_up(time_limit=0)
    assert progress.timed_out and progress.batches == 0
    assert len(outbox()) == 3


def test_status_reports_and_fails_above_limits(capsys):
    article, _ = article_with_children()
    article.delete()
    call_command("crossfk_cleanup", "--status")
    out = capsys.readouterr().out
    assert "deferred.Comment.article in 'default': 1 pending" in out
    with pytest.raises(CommandError, match="3 pending rows, more than --max-pending 2"):
        call_command("crossfk_cleanup", "--status", "--max-pending", "2")
    call_command("crossfk_cleanup", "--status", "--max-pending", "3", "--max-age", "60")
    call_command("crossfk_cleanup")
    assert "3 outbox row(s) done in 1 batch(es)" in capsys.readouterr().out
    assert backlog() == []


def test_check_deferred_set_null_needs_null():
    from crossfk import CrossDBForeignKey

    field = CrossDBForeignKey(Article, DEFERRED_SET_NULL)
    field.set_attributes_from_name("article")
    field.model = Comment
    assert [m.id for m in field._check_on_delete()] == ["crossfk.E003"]


def test_crossfk_check_tells_pending_from_dangling(capsys):
    article, _ = article_with_children()
    pk = article.pk
    lost = Article.objects.create(title="lost")
    Comment.objects.create(article=lost)
    # Deleted behind crossfk's back: no outbox row, a real dangling reference.
    Article.objects.filter(pk=lost.pk)._raw_delete("default")
    article.delete()
    with pytest.raises(CommandError, match=r"^1 dangling reference"):
        call_command("crossfk_check", "deferred.Comment", verbosity=2)
    out = capsys.readouterr().out
    assert (
        "deferred.Comment.article -> deferred.Article (default): 1 dangling, "
        "2 pending cleanup"
    ) in out
    assert f"article_id={lost.pk} is missing" in out
    assert out.count(f"article_id={pk} is pending cleanup") == 2
    # --fix leaves the pending ones to crossfk_cleanup.
    call_command("crossfk_check", "deferred.Comment", fix="delete")
    assert list(Comment.objects.values_list("article_id", flat=True)) == [pk, pk]


def test_backlog_check_warns_when_old(settings):
    from crossfk.checks import check_deferred_backlog

    article, _ = article_with_children()
    article.delete()
    settings.DEBUG = False
    assert check_deferred_backlog() == []
    settings.DEBUG = True
    assert check_deferred_backlog() == []  # not old yet
    PendingCleanup.objects.using("default").update(
        deleted_at=timezone.now() - timedelta(hours=2)
    )
    [warning] = check_deferred_backlog()
    assert warning.id == "crossfk.W008"
    assert warning.msg.startswith(
        "3 deferred on_delete action(s) are pending in database 'default', the "
        "oldest for 720"
    )
    settings.DEBUG = False
    assert [m.id for m in check_deferred_backlog(databases=["default"])] == [
        "crossfk.W008"
    ]
    assert check_deferred_backlog(databases=["secondary"]) == []


def test_an_action_that_fails_is_reported_and_held(capsys):
    pinned, _ = article_with_children("pinned", comments=1)
    Pin.objects.create(comment=pinned.comments.get())
    other, _ = article_with_children("other", comments=1)
    pinned_pk = pinned.pk
    pinned.delete()
    other.delete()
    with pytest.raises(CommandError, match=r"^1 deferred action\(s\) could not"):
        call_command("crossfk_cleanup")
    err = capsys.readouterr().err
    assert err.startswith(
        f"Left pending: deferred.Comment.article of Article {pinned_pk} in "
        f"'default': Cannot delete some instances of model 'Comment' because "
        f"they are referenced through protected foreign keys: 'Pin.comment'."
    )
    assert list(Comment.objects.values_list("article_id", flat=True)) == [pinned_pk]
    held = PendingCleanup.objects.using("default").get()
    assert (held.relation, held.target) == ("deferred.Comment.article", str(pinned_pk))
    assert held.claimed_until > timezone.now()  # not retried by every batch
    assert clean_up().batches == 0


def test_loop_goes_on_until_the_time_limit(capsys):
    article, _ = article_with_children()
    article.delete()
    started = time.monotonic()
    call_command("crossfk_cleanup", "--loop", "--time-limit", "1.5")
    assert time.monotonic() - started >= 1.5
    out = capsys.readouterr().out
    assert out.count("3 outbox row(s) done in 1 batch(es)") == 1
    assert out.endswith("Time limit reached; the rest is left for the next run.\n")
    assert outbox() == []


def test_database_narrows_the_outboxes():
    article, _ = article_with_children()
    article.delete()
    call_command("crossfk_cleanup", "--database", "secondary")
    assert len(outbox()) == 3
    call_command("crossfk_cleanup", "--database", "default")
    assert outbox() == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be at least 1."),
        (["--database", "nowhere"], "--database: 'nowhere' not in DATABASES."),
        (["--max-age", "5"], "--max-pending and --max-age go with --status."),
    ],
)
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(CommandError, match=f"^{re.escape(message)}$"):
        call_command("crossfk_cleanup", *arguments)
