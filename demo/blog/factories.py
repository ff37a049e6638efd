"""Factories that write each model to its own database, so a LinkFactory
creates its Post in "default" and the Link in "secondary"."""

import factory

from blog.models import Link, Post
from crossfk.factories import PartitionedModelFactory


class PostFactory(PartitionedModelFactory):
    class Meta:
        model = Post

    title = factory.Faker("sentence", nb_words=4)
    body = factory.Faker("paragraph")


class LinkFactory(PartitionedModelFactory):
    class Meta:
        model = Link

    url = factory.Faker("url")
    title = factory.Faker("sentence", nb_words=3)
    post = factory.SubFactory(PostFactory)
