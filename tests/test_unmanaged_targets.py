"""Reverse lookups from a target whose manager crossfk does not replace.

``auth.User`` keeps Django's ``UserManager``, whose querysets join: a
lookup across the relation fails with a FieldError that names both models
and the recipe, ``crossfk.CrossQuerySet(User)``, which answers it with one
query per database.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldError
from django.db.models import Q

from crossfk import CrossQuerySet
from crossfk.testing import assert_queries_per_db
from tests.testapp.models import Profile

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])

User = get_user_model()


@pytest.fixture
def users():
    ann, bob, cid = (User.objects.create(username=name) for name in "abc")
    Profile.objects.create(user=ann, bio="writer")
    Profile.objects.create(user=bob, bio="reader")
    Profile.objects.create(user=bob, bio="writer")
    return ann, bob, cid


def usernames(queryset) -> list[str]:
    return sorted(queryset.values_list("username", flat=True))


def test_the_users_manager_refuses_the_join_naming_both_models_and_the_recipe(users):
    queryset = User.objects.filter(profiles__bio="writer")
    with pytest.raises(FieldError) as raised:
        list(queryset)
    message = str(raised.value)
    assert message.startswith(
        "Cannot join Profile and User across databases through Profile.user "
        "(Profile in 'secondary', User in 'default')."
    )
    assert "crossfk.CrossQuerySet(User).filter(profiles__...)" in message


def test_cross_queryset_of_users_filters_by_their_profiles(users):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        found = usernames(CrossQuerySet(User).filter(profiles__bio="writer"))
    assert found == ["a", "b"]


def test_cross_queryset_of_users_excludes_and_combines_as_a_join_would(users):
    assert usernames(CrossQuerySet(User).exclude(profiles__bio="reader")) == ["a", "c"]
    assert usernames(CrossQuerySet(User).filter(profiles=None)) == ["c"]
    assert usernames(
        CrossQuerySet(User).filter(Q(profiles__bio="reader") | Q(username="c"))
    ) == ["b", "c"]


def test_cross_queryset_of_users_prefetches_their_profiles(users):
    with assert_queries_per_db({"default": 1, "secondary": 1}):
        bios = {
            user.username: sorted(profile.bio for profile in user.profiles.all())
            for user in CrossQuerySet(User).prefetch_cross("profiles")
        }
    assert bios == {"a": ["writer"], "b": ["reader", "writer"], "c": []}
