from blog.views import link_list
from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("", link_list, name="link-list"),
    path("admin/", admin.site.urls),
]
