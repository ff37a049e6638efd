"""The blog's admin: Link lives in "secondary", its post in "default".

Plain ``ModelAdmin``s: ``list_select_related`` fetches the posts the
changelist shows with one query per database per page; the autocomplete
widget, the filter and the search on the post's title read Post from its
own database. Deleting a post takes its links in "secondary" with it, inside
``AtomicRequestsMiddleware``'s one transaction over both databases.
"""

from django.contrib import admin

from blog.models import Link, Post


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ("title", "created")
    search_fields = ("title",)
    ordering = ("-created", "-id")


@admin.register(Link)
class LinkAdmin(admin.ModelAdmin):
    list_display = ("url", "title", "post")
    list_select_related = ("post",)
    search_fields = ("url", "title", "post__title")
    list_filter = ("post",)
    autocomplete_fields = ("post",)
