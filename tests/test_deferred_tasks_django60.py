"""The cleanup task on Django's tasks framework (Django 6.0+)."""

import pytest
from django.db import transaction
from django.tasks import default_task_backend

from crossfk.models import PendingCleanup
from crossfk.tasks import clean_up_deferred
from tests.deferred.models import Article, Comment

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


@pytest.fixture(autouse=True)
def no_results():
    default_task_backend.clear()
    yield
    default_task_backend.clear()


def deleted_article():
    article = Article.objects.create(title="a")
    Comment.objects.create(article=article)
    return article


def test_a_committed_delete_enqueues_the_cleanup(django_capture_on_commit_callbacks):
    article = deleted_article()
    with django_capture_on_commit_callbacks(execute=True):
        article.delete()
    [result] = default_task_backend.results
    assert result.task.func is clean_up_deferred.func
    assert result.kwargs == {"aliases": ["default"]}
    assert Comment.objects.count() == 1  # the dummy backend runs nothing


def test_a_rolled_back_delete_enqueues_nothing(django_capture_on_commit_callbacks):
    article = deleted_article()
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(using="default"),
    ):
        article.delete()
        raise RuntimeError
    assert callbacks == []
    assert default_task_backend.results == []


def test_the_task_drains_the_outbox(settings, django_capture_on_commit_callbacks):
    settings.TASKS = {
        "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}
    }
    article = deleted_article()
    with django_capture_on_commit_callbacks(execute=True):
        article.delete()
    assert Comment.objects.count() == 0
    assert not PendingCleanup.objects.using("default").exists()


def test_no_task_without_a_backend(settings, django_capture_on_commit_callbacks):
    settings.CROSSFK_CLEANUP_TASK_BACKEND = None
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        deleted_article().delete()
    assert callbacks == []
    assert PendingCleanup.objects.using("default").count() == 2
