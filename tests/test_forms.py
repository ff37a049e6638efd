"""Forms over a cross relation: ``Link.post`` offers and checks "default"'s posts.

Covers the field's ``formfield()`` (a ``ModelChoiceField`` whose queryset
reads the target's database) and a ``ModelForm`` of Link: a valid post is
saved in "secondary", a missing id or the id of another database's row is a
form error that saves nothing.
"""

import pytest
from django import forms

from crossfk.testing import assert_queries_per_db
from tests.factories import LinkFactory, PostFactory
from tests.testapp.models import Link, Post

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])

MISSING_ID = 987654
LINK_ID = 4321
INVALID_CHOICE = (
    "Select a valid choice. That choice is not one of the available choices."
)


class LinkForm(forms.ModelForm):
    class Meta:
        model = Link
        fields = ["url", "post"]


def test_formfield_is_a_model_choice_field_over_the_target_database():
    formfield = Link._meta.get_field("post").formfield()

    assert isinstance(formfield, forms.ModelChoiceField)
    assert formfield.queryset.model is Post
    assert formfield.queryset.db == "default"


def test_formfield_choices_are_the_posts_read_in_one_query():
    posts = PostFactory.create_batch(3)
    formfield = Link._meta.get_field("post").formfield()

    with assert_queries_per_db({"default": 1, "secondary": 0}):
        choices = [(str(value), label) for value, label in formfield.choices]

    assert choices[0] == ("", formfield.empty_label)
    assert sorted(choices[1:]) == sorted((str(post.pk), post.title) for post in posts)


def test_model_form_saves_the_link_in_secondary():
    post = PostFactory()
    form = LinkForm(data={"url": "https://a.example", "post": post.pk})

    # The choice's lookup, then full_clean()'s check that the post exists.
    with assert_queries_per_db({"default": 2, "secondary": 0}):
        assert form.is_valid(), form.errors
    with assert_queries_per_db({"default": 1, "secondary": 1}):  # check, insert
        link = form.save()

    assert Link.objects.get(pk=link.pk).post_id == post.pk


def test_model_form_with_a_missing_post_is_an_error_and_saves_nothing():
    form = LinkForm(data={"url": "https://a.example", "post": MISSING_ID})

    assert form.errors == {"post": [INVALID_CHOICE]}
    assert Link.objects.count() == 0


def test_model_form_with_the_id_of_a_secondary_row_is_an_error():
    # A Link's id is no Post's id: the choice is looked up among the posts.
    link = LinkFactory(id=LINK_ID)
    form = LinkForm(data={"url": "https://a.example", "post": link.pk})

    assert form.errors == {"post": [INVALID_CHOICE]}
    assert list(Link.objects.values_list("pk", flat=True)) == [link.pk]


def test_model_form_of_an_existing_link_shows_its_post_as_initial():
    link = LinkFactory()

    form = LinkForm(instance=link)

    assert form["post"].value() == link.post.pk
