"""Django REST framework over a cross relation (the ``drf`` extra).

A ``ModelSerializer`` of Link shows ``post`` as the post's primary key
without reading the post, and validates it against "default"; nested
serializers over ``prefetch_cross()`` querysets cost one query per database
and level, whatever the number of rows.
"""

import pytest
from rest_framework import serializers

from crossfk.testing import assert_queries_per_db
from tests.factories import LinkFactory, PostFactory, TagFactory
from tests.testapp.models import Link, Post, Tag

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])

MISSING_ID = 987654


def rows_of_links():
    return list(Link.objects.order_by("pk").values_list("pk", "url", "post_id"))


class LinkSerializer(serializers.ModelSerializer):
    class Meta:
        model = Link
        fields = ["id", "url", "post"]


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name"]


class LinkWithTagsSerializer(serializers.ModelSerializer):
    tags = TagSerializer(many=True, read_only=True)

    class Meta:
        model = Link
        fields = ["id", "url", "tags"]


class PostSerializer(serializers.ModelSerializer):
    class Meta:
        model = Post
        fields = ["id", "title", "author"]


class LinkWithPostSerializer(serializers.ModelSerializer):
    post = PostSerializer(read_only=True)

    class Meta:
        model = Link
        fields = ["id", "url", "post"]


class PostWithLinksSerializer(serializers.ModelSerializer):
    links = LinkWithTagsSerializer(many=True, read_only=True)

    class Meta:
        model = Post
        fields = ["id", "title", "links"]


# The relation as a primary key ------------------------------------------------


def test_serializer_shows_the_post_as_its_primary_key_without_reading_it():
    link = Link.objects.get(pk=LinkFactory().pk)

    with assert_queries_per_db({"default": 0, "secondary": 0}):
        data = LinkSerializer(link).data

    assert data == {"id": link.pk, "url": link.url, "post": link.post_id}


def test_serializer_field_reads_the_posts_from_default():
    field = LinkSerializer().fields["post"]

    assert isinstance(field, serializers.PrimaryKeyRelatedField)
    assert field.queryset.model is Post
    assert field.queryset.db == "default"


def test_serializer_validates_the_post_in_default():
    post = PostFactory()
    serializer = LinkSerializer(data={"url": "https://a.example", "post": post.pk})

    with assert_queries_per_db({"default": 1, "secondary": 0}):
        assert serializer.is_valid(), serializer.errors

    assert serializer.validated_data["post"] == post


def test_serializer_saves_the_link_in_secondary():
    post = PostFactory()
    serializer = LinkSerializer(data={"url": "https://a.example", "post": post.pk})
    serializer.is_valid(raise_exception=True)

    with assert_queries_per_db({"default": 1, "secondary": 1}):  # check, insert
        link = serializer.save()

    assert rows_of_links() == [(link.pk, "https://a.example", post.pk)]


def test_serializer_with_a_missing_post_is_an_error_and_saves_nothing():
    serializer = LinkSerializer(data={"url": "https://a.example", "post": MISSING_ID})

    assert not serializer.is_valid()
    assert serializer.errors == {
        "post": [f'Invalid pk "{MISSING_ID}" - object does not exist.']
    }
    assert rows_of_links() == []


# Nested serializers over prefetch_cross() ------------------------------------


@pytest.mark.parametrize("link_count", [2, 10])
def test_nested_post_of_each_link_costs_one_query_per_database(link_count):
    links = LinkFactory.create_batch(link_count)

    with assert_queries_per_db({"default": 1, "secondary": 1}):
        data = LinkWithPostSerializer(
            Link.objects.prefetch_cross("post").order_by("pk"), many=True
        ).data

    assert [item["post"] for item in data] == [
        {"id": link.post.pk, "title": link.post.title, "author": link.post.author_id}
        for link in links
    ]


@pytest.mark.parametrize("post_count", [2, 10])
def test_nested_links_and_tags_of_each_post_cost_one_query_per_level(post_count):
    posts = PostFactory.create_batch(post_count)
    for post in posts:
        TagFactory(link=LinkFactory(post=post))

    with assert_queries_per_db({"default": 1, "secondary": 2}):
        data = PostWithLinksSerializer(
            Post.objects.prefetch_cross("links__tags").order_by("pk"), many=True
        ).data

    assert [item["id"] for item in data] == [post.pk for post in posts]
    for item, post in zip(data, posts, strict=True):
        (link,) = post.links.all()
        (tag,) = link.tags.all()
        assert item["links"] == [
            {"id": link.pk, "url": link.url, "tags": [{"id": tag.pk, "name": tag.name}]}
        ]
