"""The blog of crossfk's original write-up: posts in one database, the links
readers attach to them in another."""

from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager


class Post(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    objects = MultiDBManager("default")

    def __str__(self) -> str:
        return self.title


class Link(models.Model):
    url = models.URLField()
    title = models.CharField(max_length=200)
    post = CrossDBForeignKey(
        Post, on_delete=models.CASCADE, related_name="links", null=True, blank=True
    )

    objects = MultiDBManager("secondary")

    def __str__(self) -> str:
        return self.title
