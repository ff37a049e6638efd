"""Two copies of one relation, so crossfk and plain Django read the same rows.

``Post``/``Link`` live in two databases joined by a ``CrossDBForeignKey``.
``SamePost``/``SameLink`` live together in "default" with a real
``ForeignKey`` and Django's own manager, so they measure Django unaided:
the router's fallback alias places them, not a ``MultiDBManager``.
"""

from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager


class Post(models.Model):
    title = models.CharField(max_length=200)

    objects = MultiDBManager("default")

    def __str__(self):
        return self.title


class Link(models.Model):
    url = models.URLField()
    post = CrossDBForeignKey(Post, models.CASCADE, related_name="links")

    objects = MultiDBManager("secondary")

    def __str__(self):
        return self.url


class SamePost(models.Model):
    title = models.CharField(max_length=200)

    def __str__(self):
        return self.title


class SameLink(models.Model):
    url = models.URLField()
    post = models.ForeignKey(SamePost, models.CASCADE, related_name="links")

    def __str__(self):
        return self.url
