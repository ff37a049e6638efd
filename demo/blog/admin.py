"""The blog's admin: Link lives in "secondary", its post in "default".

``CrossDBModelAdmin`` prefetches the posts the changelist shows (one query
per database per page); the autocomplete widget, the filter and the search
on the post's title read Post from its own database.
"""

from django.contrib import admin

from blog.models import Link, Post
from crossfk.admin import CrossDBModelAdmin


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ("title", "created")
    search_fields = ("title",)
    ordering = ("-created", "-id")


@admin.register(Link)
class LinkAdmin(CrossDBModelAdmin):
    list_display = ("url", "title", "post")
    search_fields = ("url", "title", "post__title")
    list_filter = ("post",)
    autocomplete_fields = ("post",)
