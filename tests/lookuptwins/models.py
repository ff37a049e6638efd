"""One model graph in two families, for the differential lookup tests.

``Cross*`` models spread the graph over "default" and "secondary" with
CrossDBForeignKeys; ``Twin*`` models are the same graph with ordinary
ForeignKeys, all in "default". Both are built by ``build_family()`` from one
declaration, so they cannot drift apart: whatever Django answers for the
twin is what crossfk must answer for the cross family.

    Author <- Post <-(cross) Link <- Tag          Post.author, Tag.link: ordinary
                   <-(cross, to_field=slug) SlugRef
              Link <-(cross) Note                 back into "default"
    UUIDTarget, CharTarget <-(cross) KeyRef
"""

import uuid
from types import SimpleNamespace

from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager


def build_family(prefix: str, crosses: bool) -> SimpleNamespace:
    """The graph's models, named ``prefix + name``; across databases if ``crosses``."""

    def model(model_name, alias, **fields):
        attrs = {
            "__module__": __name__,
            "objects": MultiDBManager(alias if crosses else "default"),
            **fields,
        }
        return type(f"{prefix}{model_name}", (models.Model,), attrs)

    def relation(to, **options):
        """The relations that cross databases in the cross family."""
        if crosses:
            return CrossDBForeignKey(to, models.CASCADE, **options)
        return models.ForeignKey(to, models.CASCADE, **options)

    family = SimpleNamespace()
    family.Author = model(
        "Author",
        "default",
        name=models.CharField(max_length=10, null=True),
        rank=models.IntegerField(null=True),
    )
    family.Post = model(
        "Post",
        "default",
        title=models.CharField(max_length=10, null=True),
        slug=models.SlugField(unique=True),
        author=models.ForeignKey(
            family.Author, models.CASCADE, null=True, related_name="posts"
        ),
    )
    family.Link = model(
        "Link",
        "secondary",
        url=models.CharField(max_length=10),
        rank=models.IntegerField(null=True),
        post=relation(family.Post, null=True, related_name="links"),
    )
    family.Tag = model(
        "Tag",
        "secondary",
        name=models.CharField(max_length=10),
        link=models.ForeignKey(family.Link, models.CASCADE, related_name="tags"),
    )
    family.Note = model(
        "Note",
        "default",
        text=models.CharField(max_length=10, null=True),
        link=relation(family.Link, related_name="notes"),
    )
    family.SlugRef = model(
        "SlugRef",
        "secondary",
        post=relation(
            family.Post, to_field="slug", null=True, related_name="slug_refs"
        ),
    )
    family.UUIDTarget = model(
        "UUIDTarget",
        "default",
        id=models.UUIDField(primary_key=True, default=uuid.uuid4),
        label=models.CharField(max_length=10, null=True),
    )
    family.CharTarget = model(
        "CharTarget",
        "default",
        code=models.CharField(primary_key=True, max_length=10),
        label=models.CharField(max_length=10, null=True),
    )
    family.KeyRef = model(
        "KeyRef",
        "secondary",
        uuid=relation(family.UUIDTarget, null=True, related_name="refs"),
        char=relation(family.CharTarget, null=True, related_name="refs"),
    )
    return family


CROSS = build_family("Cross", crosses=True)
TWIN = build_family("Twin", crosses=False)
