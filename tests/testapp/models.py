"""Models for the tests: targets in "default", references in "secondary".

Every on_delete action has its own referencing model, each side has an
ordinary ForeignKey of its own (Post.author, Tag.link), and the targets
cover integer, big integer, UUID and char primary keys. Post has a natural
key (its slug) for fixtures.
"""

import uuid

from django.conf import settings
from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager


class Author(models.Model):
    name = models.CharField(max_length=100)

    objects = MultiDBManager("default")

    def __str__(self):
        return self.name


class PostManager(MultiDBManager):
    def get_by_natural_key(self, slug):
        return self.get(slug=slug)


class Post(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(
        Author, models.CASCADE, null=True, blank=True, related_name="posts"
    )
    # The natural key of fixtures. Nullable, so that posts made without one
    # (the SET_DEFAULT placeholder) never clash on uniqueness.
    slug = models.SlugField(max_length=200, unique=True, null=True, blank=True)

    objects = PostManager("default")

    def __str__(self):
        return self.title

    def natural_key(self):
        return (self.slug,)


class BigTarget(models.Model):
    id = models.BigAutoField(primary_key=True)

    objects = MultiDBManager("default")


class UUIDTarget(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)

    objects = MultiDBManager("default")


class CharTarget(models.Model):
    code = models.CharField(primary_key=True, max_length=20)

    objects = MultiDBManager("default")


class Link(models.Model):
    url = models.URLField()
    post = CrossDBForeignKey(
        Post, on_delete=models.CASCADE, related_name="links", null=True, blank=True
    )

    objects = MultiDBManager("secondary")

    def __str__(self):
        return self.url


class Tag(models.Model):
    """Placed by CROSSFK_PARTITIONS, not by a manager."""

    name = models.CharField(max_length=50)
    link = models.ForeignKey(Link, models.CASCADE, related_name="tags")


class ProtectedLink(models.Model):
    post = CrossDBForeignKey(Post, on_delete=models.PROTECT, related_name="+")

    objects = MultiDBManager("secondary")


class RestrictedLink(models.Model):
    post = CrossDBForeignKey(
        "testapp.Post", on_delete=models.RESTRICT, related_name="restricted_links"
    )

    objects = MultiDBManager("secondary")


class NullingLink(models.Model):
    post = CrossDBForeignKey(
        Post, on_delete=models.SET_NULL, null=True, related_name="nulling_links"
    )

    objects = MultiDBManager("secondary")


def default_post_id():
    return Post.objects.get_or_create(title="(deleted)")[0].pk


class DefaultingLink(models.Model):
    post = CrossDBForeignKey(
        Post,
        on_delete=models.SET_DEFAULT,
        default=default_post_id,
        related_name="defaulting_links",
    )

    objects = MultiDBManager("secondary")


class UnenforcedLink(models.Model):
    post = CrossDBForeignKey(
        Post, on_delete=models.DO_NOTHING, enforce=False, related_name="+"
    )

    objects = MultiDBManager("secondary")


class KeyedReference(models.Model):
    big = CrossDBForeignKey(BigTarget, models.CASCADE, null=True)
    uuid = CrossDBForeignKey(UUIDTarget, models.CASCADE, null=True)
    char = CrossDBForeignKey(CharTarget, models.CASCADE, null=True)

    objects = MultiDBManager("secondary")


class SlugTarget(models.Model):
    name = models.CharField(max_length=50)
    slug = models.SlugField(unique=True)

    objects = MultiDBManager("default")

    def __str__(self):
        return self.slug


class SlugLink(models.Model):
    """A relation by ``to_field``: the column holds the target's slug."""

    target = CrossDBForeignKey(
        SlugTarget,
        models.CASCADE,
        to_field="slug",
        null=True,
        related_name="slug_links",
    )

    objects = MultiDBManager("secondary")


class SlugLinkProxy(SlugLink):
    """A proxy: it shares SlugLink's table and its CrossDBForeignKey."""

    class Meta:
        proxy = True


class FeaturedSlugLink(SlugLink):
    """A multi-table child: SlugLink's fields live in the parent's table."""

    headline = models.CharField(max_length=100, blank=True)


class Profile(models.Model):
    """A reference to ``auth.User``, whose manager crossfk does not replace."""

    user = CrossDBForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="profiles"
    )
    bio = models.CharField(max_length=100, blank=True)

    objects = MultiDBManager("secondary")


class Memo(models.Model):
    """A model to move between databases (``crossfk_move``); ``written``
    changes on every save, which a copy must not do."""

    text = models.CharField(max_length=100)
    written = models.DateTimeField(auto_now=True)
