"""Deferred referential actions, spread over "default" and "secondary".

In "default": Article, its Sections (an ordinary CASCADE), and Flags on
comments (a synchronous cross CASCADE, which the worker's deletes reach).
In "secondary": Comments (DEFERRED_CASCADE to Article) with their Replies
(an ordinary CASCADE) and Pins (an ordinary PROTECT, which the worker
cannot delete through), Votes (DEFERRED_SET_NULL to Section), and Marks
(DEFERRED_SET to a placeholder Article).
"""

from django.db import models

from crossfk import (
    DEFERRED_CASCADE,
    DEFERRED_SET,
    DEFERRED_SET_NULL,
    CrossDBForeignKey,
    MultiDBManager,
)

PLACEHOLDER = "(deleted)"


class Article(models.Model):
    title = models.CharField(max_length=50, unique=True)

    objects = MultiDBManager("default")

    def __str__(self) -> str:
        return self.title


def placeholder_article() -> int:
    """The Article that a deleted one's Marks point to; one, as two
    workers may ask at once (its title is unique)."""
    return Article.objects.get_or_create(title=PLACEHOLDER)[0].pk


class Section(models.Model):
    article = models.ForeignKey(Article, models.CASCADE, related_name="sections")

    objects = MultiDBManager("default")


class Comment(models.Model):
    article = CrossDBForeignKey(Article, DEFERRED_CASCADE, related_name="comments")
    text = models.CharField(max_length=50, default="")

    objects = MultiDBManager("secondary")


class Reply(models.Model):
    comment = models.ForeignKey(Comment, models.CASCADE, related_name="replies")

    objects = MultiDBManager("secondary")


class Pin(models.Model):
    """Keeps its comment: the worker cannot delete it."""

    comment = models.ForeignKey(Comment, models.PROTECT, related_name="pins")

    objects = MultiDBManager("secondary")


class Flag(models.Model):
    comment = CrossDBForeignKey(Comment, models.CASCADE, related_name="flags")

    objects = MultiDBManager("default")


class Vote(models.Model):
    section = CrossDBForeignKey(
        Section, DEFERRED_SET_NULL, null=True, related_name="votes"
    )

    objects = MultiDBManager("secondary")


class Mark(models.Model):
    article = CrossDBForeignKey(
        Article, DEFERRED_SET(placeholder_article), related_name="marks"
    )

    objects = MultiDBManager("secondary")
