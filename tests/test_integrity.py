"""enforce=True: no write leaves a reference to a missing row."""

import json

import pytest
from django.core import serializers
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from crossfk import CrossDBIntegrityError
from crossfk.testing import assert_queries_per_db
from tests.factories import LinkFactory, PostFactory, UnenforcedLinkFactory
from tests.testapp.models import Link, Post, UnenforcedLink

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])

MISSING_ID = 987654


def test_save_with_missing_target_raises_and_writes_nothing():
    link = Link(url="https://a.example", post_id=MISSING_ID)
    with pytest.raises(CrossDBIntegrityError) as caught:
        link.save()
    message = str(caught.value)
    assert "Link.post" in message
    assert f"Post with id {MISSING_ID}" in message
    assert "database 'default'" in message
    assert isinstance(caught.value, IntegrityError)
    assert Link.objects.count() == 0


def test_save_checks_existence_with_one_query():
    post = PostFactory()
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        Link(url="https://a.example", post=post).save()


def test_update_of_the_id_is_checked_too():
    link = LinkFactory()
    link.post_id = MISSING_ID
    with pytest.raises(CrossDBIntegrityError):
        link.save()
    assert Link.objects.get(pk=link.pk).post_id != MISSING_ID


def test_save_of_other_fields_only_skips_the_check():
    link = LinkFactory()
    link.url = "https://b.example"
    with assert_queries_per_db({"default": 0, "secondary": 1}):
        link.save(update_fields=["url"])


def test_bulk_create_checks_every_target_in_one_query():
    posts = PostFactory.create_batch(50)
    links = [Link(url=f"https://{p.pk}.example", post=p) for p in posts]
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        Link.objects.bulk_create(links)
    assert Link.objects.count() == 50


def test_bulk_create_with_a_missing_target_writes_nothing():
    post = PostFactory()
    links = [
        Link(url="https://a.example", post=post),
        Link(url="https://b.example", post_id=MISSING_ID),
    ]
    with pytest.raises(CrossDBIntegrityError, match=str(MISSING_ID)):
        Link.objects.bulk_create(links)
    assert Link.objects.count() == 0


def test_queryset_update_to_a_missing_target_raises():
    link = LinkFactory()
    with pytest.raises(CrossDBIntegrityError):
        Link.objects.filter(pk=link.pk).update(post_id=MISSING_ID)
    assert Link.objects.get(pk=link.pk).post_id == link.post_id


def test_enforce_false_allows_dangling_ids():
    UnenforcedLink.objects.create(post_id=MISSING_ID)
    assert UnenforcedLink.objects.filter(post_id=MISSING_ID).count() == 1


def test_loaddata_raw_save_skips_the_check():
    data = json.dumps(
        [
            {
                "model": "testapp.link",
                "pk": 1,
                "fields": {"url": "https://a.example", "post": MISSING_ID},
            }
        ]
    )
    with assert_queries_per_db({"default": 0}):
        for obj in serializers.deserialize("json", data, using="secondary"):
            obj.save(using="secondary")
    assert Link.objects.get(pk=1).post_id == MISSING_ID


def test_full_clean_validates_existence_in_the_target_database():
    link = Link(url="https://a.example", post_id=MISSING_ID)
    with pytest.raises(ValidationError) as caught:
        link.full_clean()
    (message,) = caught.value.message_dict["post"]
    assert str(MISSING_ID) in message
    assert "database 'default'" in message


def test_full_clean_accepts_an_existing_target():
    post = PostFactory()
    Link(url="https://a.example", post=post).full_clean()


def test_unenforced_field_still_validates_in_full_clean():
    link = UnenforcedLinkFactory.build(post=Post.objects.get(pk=PostFactory().pk))
    link.post_id = MISSING_ID
    with pytest.raises(ValidationError):
        link.full_clean()
