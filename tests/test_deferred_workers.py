"""The deferred actions' worker, killed at any point and beside other workers.

``tests/deferred_child.py`` runs the worker in a child process and kills
it at its n-th kill point (before each write statement, after each
COMMIT, on either database), for n = 0, 1, 2, ... until it finishes. Once
its claim lapses, the next worker must leave exactly what a worker never
killed leaves: a killed worker loses nothing and applies nothing twice
wrongly. Workers share one outbox: no row is held by two at once, and on
PostgreSQL and MariaDB one inside its claim's transaction does not hold
up another (SKIP LOCKED).
"""

import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import uuid
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from crossfk.cleanup import LEASE, Progress, clean_up, deferred_relations, run_batch
from crossfk.models import PendingCleanup
from tests.deferred.models import (
    PLACEHOLDER,
    Article,
    Comment,
    Flag,
    Mark,
    Reply,
    Section,
    Vote,
)
from tests.deferred.rows import article_with_children

ALIASES = ("default", "secondary")
SERVERS = ("postgresql", "mysql")
REPO_ROOT = Path(__file__).resolve().parent.parent

# A child process sees only committed rows.
pytestmark = pytest.mark.django_db(databases=list(ALIASES), transaction=True)


class Workers:
    """tests.deferred_child, started once: worker processes on request."""

    def __init__(self, sqlite_dir: Path) -> None:
        self.sqlite_dir = sqlite_dir
        environment = {
            **os.environ,
            "CROSSFK_PG_NAME": connections["default"].settings_dict["NAME"],
            "CROSSFK_CHILD_SQLITE_DIR": str(sqlite_dir),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.deferred_child"],
            cwd=REPO_ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def request(self, **request) -> dict:
        self.copy_sqlite_databases(to_files=True)
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise AssertionError("tests.deferred_child failed: see its stderr.")
        self.copy_sqlite_databases(to_files=False)
        answer = json.loads(answer)
        if "error" in answer:
            raise AssertionError(f"{answer['error']} (its traceback: stderr)")
        return answer

    def copy_sqlite_databases(self, to_files: bool) -> None:
        """SQLite's test databases are in this process's memory: the workers
        get copies in files, and their changes are copied back."""
        for alias in ALIASES:
            connection = connections[alias]
            if connection.vendor != "sqlite":
                continue
            connection.ensure_connection()
            path = self.sqlite_dir / f"{alias}.sqlite3"
            with closing(sqlite3.connect(path)) as file:
                if to_files:
                    connection.connection.backup(file)
                else:
                    file.backup(connection.connection)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def workers(django_db_setup):
    # Not pytest's tmp_path: a pytest session started meanwhile (another
    # run on the machine) removes all but the three newest sessions' folders.
    with tempfile.TemporaryDirectory(prefix="crossfk_deferred_child_") as folder:
        workers = Workers(Path(folder))
        yield workers
        workers.close()


def delete_everything() -> None:
    for model in (Flag, Reply, Comment, Vote, Mark, Section, Article):
        model.objects.all().delete()
    for alias in ALIASES:  # what the deletes of targets just recorded
        PendingCleanup.objects.using(alias).all().delete()


def delete_an_article(comments: int = 3) -> None:
    """An article with ``comments`` comments (each with a reply and a flag),
    a section with a vote, and a mark, deleted; a kept one with one of each."""
    gone, _ = article_with_children("gone", comments)
    article_with_children("kept", 1)
    gone.delete()


def end_state() -> dict:
    """Every row of the deferred models, by names rather than keys."""
    titles = dict(Article.objects.values_list("pk", "title"))
    section_titles = {
        section.pk: titles[section.article_id] for section in Section.objects.all()
    }
    comment_texts = dict(Comment.objects.values_list("pk", "text"))
    return {
        "articles": sorted(titles.values()),
        "sections": sorted(section_titles.values()),
        "comments": sorted(
            (text, titles.get(article_id, "dangling"))
            for text, article_id in Comment.objects.values_list("text", "article_id")
        ),
        "replies": sorted(
            comment_texts.get(pk, "dangling")
            for pk in Reply.objects.values_list("comment_id", flat=True)
        ),
        "flags": sorted(
            comment_texts.get(pk, "dangling")
            for pk in Flag.objects.values_list("comment_id", flat=True)
        ),
        "votes": sorted(
            (
                section_titles.get(pk, "dangling") if pk else None
                for pk in Vote.objects.values_list("section_id", flat=True)
            ),
            key=str,
        ),
        "marks": sorted(
            titles.get(pk, "dangling")
            for pk in Mark.objects.values_list("article_id", flat=True)
        ),
        "outbox": [
            row
            for alias in ALIASES
            for row in PendingCleanup.objects.using(alias).values_list(
                "relation", "target"
            )
        ],
    }


# What a worker never killed leaves of delete_an_article(): the kept
# article's rows untouched, one placeholder article, an empty outbox.
CLEANED_UP = {
    "articles": [PLACEHOLDER, "kept"],
    "sections": ["kept"],
    "comments": [("kept0", "kept")],
    "replies": ["kept0"],
    "flags": ["kept0"],
    "votes": [None, "kept"],
    "marks": [PLACEHOLDER, "kept"],
    "outbox": [],
}


def lapse_claims() -> int:
    """Let the claims of a killed worker lapse, as its lease would; how many."""
    return sum(
        PendingCleanup.objects.using(alias)
        .filter(claimed_by__isnull=False)
        .update(claimed_until=timezone.now() - timedelta(seconds=1))
        for alias in ALIASES
    )


def crash_at_each_point(workers: Workers, scenario: str):
    """Yield where each run of the worker was killed, None for the run that
    finished (the last), each on a fresh delete_an_article()."""
    crash_at = 0
    while True:
        delete_everything()
        delete_an_article()
        killed_at = workers.request(run=scenario, crash_at=crash_at)["killed_at"]
        yield killed_at
        if killed_at is None:
            return
        crash_at += 1


# Where the worker must have been killed at least once: each statement of
# a batch, and the COMMITs on both databases.
KILL_POINTS = [
    "before UPDATE crossfk_pendingcleanup SET claimed_by = %s",  # the claim
    "before UPDATE deferred_vote",
    "before DELETE FROM deferred_reply",
    "before DELETE FROM deferred_flag",
    "before DELETE FROM deferred_comment",
    "before INSERT INTO deferred_article",  # the placeholder
    "before UPDATE deferred_mark",
    "before DELETE FROM crossfk_pendingcleanup",
    "before UPDATE crossfk_pendingcleanup SET claimed_by = NULL",  # the release
    "after COMMIT on default",
    "after COMMIT on secondary",
]


def test_a_killed_worker_leaves_what_the_next_one_finishes(workers):
    killed_at, wrong = [], {}
    for point in crash_at_each_point(workers, "crossfk_cleanup"):
        if point is not None:
            lapse_claims()
            clean_up()
        state = end_state()
        if state != CLEANED_UP:
            wrong[point] = {
                name: rows for name, rows in state.items() if rows != CLEANED_UP[name]
            }
        killed_at.append(point)
    assert wrong == {}
    for expected in KILL_POINTS:
        assert any(point and point.startswith(expected) for point in killed_at), (
            f"never killed {expected!r}; killed at: {killed_at}"
        )


def test_a_delete_across_commits_the_referencing_database_first():
    """The worker's delete of comments reaches their flags in "default":
    the flags must commit first, or a crash between leaves them dangling.
    The deferred relations the other way (comments, votes and marks refer
    to "default") must not turn that order round."""
    comment = Comment.objects.create(article=Article.objects.create(title="a"))
    Flag.objects.create(comment=comment)
    commits = CommitLog()
    with commits:
        Comment.objects.filter(pk=comment.pk).delete()
    assert commits.aliases == ["default", "secondary"]


class CommitLog(logging.Handler):
    """The aliases COMMITted inside the block, in order (Django logs each
    COMMIT on the ``django.db.backends`` logger when queries are logged)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.aliases: list[str] = []
        self.logger = logging.getLogger("django.db.backends")

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "sql", None) == "COMMIT":
            self.aliases.append(record.alias)

    def __enter__(self) -> "CommitLog":
        self.level_before = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        for alias in ALIASES:
            connections[alias].force_debug_cursor = True
        return self

    def __exit__(self, *exc_info) -> None:
        for alias in ALIASES:
            connections[alias].force_debug_cursor = False
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


def test_a_killed_worker_s_claim_holds_until_it_lapses(workers):
    delete_everything()
    delete_an_article()
    # Killed just after the claim committed, before any action: after its
    # COMMIT where it locks rows, before the first action's statement on
    # SQLite, where one UPDATE claims.
    killed_at = workers.request(run="crossfk_cleanup", crash_at=1)["killed_at"]
    assert killed_at == "after COMMIT on default" or killed_at.startswith(
        "before UPDATE deferred_vote SET section_id = NULL"
    )
    outbox = PendingCleanup.objects.using("default")
    assert outbox.filter(claimed_by__isnull=False).count() == 3
    assert clean_up().batches == 0
    assert lapse_claims() == 3
    assert clean_up().finished == 3
    assert end_state() == CLEANED_UP


def test_a_lapsed_claim_is_taken_over():
    delete_an_article()
    PendingCleanup.objects.using("default").update(
        claimed_by=uuid.uuid4(), claimed_until=timezone.now() - timedelta(seconds=1)
    )
    progress = clean_up()
    assert progress.finished == 3
    assert end_state() == CLEANED_UP


def test_an_unlapsed_claim_of_another_worker_is_left_alone():
    delete_an_article()
    other_worker = uuid.uuid4()
    until = timezone.now() + LEASE
    outbox = PendingCleanup.objects.using("default")
    outbox.update(claimed_by=other_worker, claimed_until=until)
    before = end_state()
    progress = clean_up()
    assert progress.batches == 0
    assert end_state() == before
    assert set(outbox.values_list("claimed_by", "claimed_until")) == {
        (other_worker, until)
    }


@pytest.mark.django_db(databases=list(ALIASES))
def test_a_batch_changes_at_most_batch_size_referencing_rows():
    """Once one relation's rows fill a batch, the batch's other relations
    wait for the next: a batch holds its locks on at most batch_size rows."""
    article = Article.objects.create(title="gone")
    for number in range(3):
        Comment.objects.create(article=article, text=f"gone{number}")
        Mark.objects.create(article=article)
    article.delete()  # two outbox rows: the comments' and the marks'
    progress = Progress()
    run_batch("default", deferred_relations(), 2, progress)
    changed = progress.rows["deferred.Comment"] + progress.rows["deferred.Mark"]
    assert changed == 2, progress.rows


def delete_articles(count: int) -> int:
    """``count`` articles, each with a comment (with a reply and a flag) and
    a mark, deleted, and a kept one alike; how many outbox rows that made."""
    for title in [f"gone{number}" for number in range(count)] + ["kept"]:
        article = Article.objects.create(title=title)
        comment = Comment.objects.create(article=article, text=title)
        Reply.objects.create(comment=comment)
        Flag.objects.create(comment=comment)
        Mark.objects.create(article=article)
    Article.objects.exclude(title="kept").delete()
    return PendingCleanup.objects.using("default").count()


def shared_end_state(count: int) -> dict:
    """What workers leave of delete_articles(count)."""
    return {
        "articles": [PLACEHOLDER, "kept"],
        "sections": [],
        "comments": [("kept", "kept")],
        "replies": ["kept"],
        "flags": ["kept"],
        "votes": [],
        "marks": [PLACEHOLDER] * count + ["kept"],
        "outbox": [],
    }


def test_two_workers_never_hold_one_row_at_once(workers):
    articles = 12
    rows = delete_articles(articles)
    first, second = workers.request(run="clean_up:batches_of_1", workers=2)["progress"]
    assert end_state() == shared_end_state(articles)
    assert first["finished"] + second["finished"] == rows
    overlapping = [
        (pk, first_span, second_span)
        for (pk, *first_span), (other_pk, *second_span) in (
            (a, b) for a in first["held"] for b in second["held"]
        )
        if pk == other_pk
        and first_span[0] < second_span[1]
        and second_span[0] < first_span[1]
    ]
    assert overlapping == []
    assert first["batches"] and second["batches"]  # both took part


@pytest.mark.vendors(default=SERVERS)
def test_a_worker_inside_its_claim_does_not_hold_up_another():
    articles = 4
    rows = delete_articles(articles)
    holding, may_go = threading.Event(), threading.Event()
    progress = {}

    def pause_after_locking(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "FOR UPDATE" in sql and not holding.is_set():
            holding.set()
            may_go.wait(timeout=30)
        return result

    def worker(name, pause):
        try:
            if pause:
                with connections["default"].execute_wrapper(pause_after_locking):
                    progress[name] = clean_up(batch_size=2)
            else:
                progress[name] = clean_up(batch_size=2)
        finally:
            connections.close_all()

    first = threading.Thread(target=worker, args=("first", True))
    first.start()
    assert holding.wait(timeout=10)
    # The first worker holds its two rows locked, inside its claim.
    second = threading.Thread(target=worker, args=("second", False))
    second.start()
    second.join(timeout=10)
    blocked = second.is_alive()
    may_go.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert not blocked
    assert progress["second"].finished == rows - 2
    assert progress["first"].finished == 2
    assert end_state() == shared_end_state(articles)
