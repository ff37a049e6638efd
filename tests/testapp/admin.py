"""Admin for the tests: the default site, and one site per relation widget.

A model registers once per site, so the change form's three widgets for
``Link.post`` each get a site: a select on ``admin.site``, ``raw_id_fields``
on ``raw_id_site``, ``autocomplete_fields`` on ``autocomplete_site``. All are
plain ``ModelAdmin``s but the raw-id one, a ``CrossDBModelAdmin``.
"""

from django.contrib import admin

from crossfk.admin import CrossDBModelAdmin
from tests.testapp.models import Author, Link, Post, Tag


@admin.register(Link)
class LinkAdmin(admin.ModelAdmin):
    """A plain ModelAdmin: Django's own idiom for a nullable relation shown."""

    list_display = ["url", "post"]
    list_select_related = ["post"]
    search_fields = ["url", "post__title"]
    list_filter = ["post", "post__author"]


class RawIdLinkAdmin(CrossDBModelAdmin):
    """No list_select_related: CrossDBModelAdmin selects what is shown."""

    list_display = ["url", "post"]
    raw_id_fields = ["post"]


class AutocompleteLinkAdmin(admin.ModelAdmin):
    list_display = ["url", "post"]
    autocomplete_fields = ["post"]


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["title", "author"]
    search_fields = ["title"]
    ordering = ["title"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "link"]


raw_id_site = admin.AdminSite(name="raw_id_admin")
autocomplete_site = admin.AdminSite(name="autocomplete_admin")

admin.site.register(Author)
raw_id_site.register(Link, RawIdLinkAdmin)
raw_id_site.register(Post, PostAdmin)
autocomplete_site.register(Link, AutocompleteLinkAdmin)
autocomplete_site.register(Post, PostAdmin)
