from django.shortcuts import render

from blog.models import Link
from blog.querycount import count_queries


def link_list(request):
    """Every link with its post: one query on each database, whatever the count."""
    with count_queries() as query_counts:
        links = list(Link.objects.prefetch_cross("post").order_by("-id"))
    return render(
        request,
        "blog/link_list.html",
        {"links": links, "query_counts": query_counts},
    )
