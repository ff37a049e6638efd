"""URLs for the admin tests: one prefix per admin site."""

from django.contrib import admin
from django.urls import path

from tests.testapp.admin import autocomplete_site, raw_id_site

urlpatterns = [
    path("admin/", admin.site.urls),
    path("raw-id-admin/", raw_id_site.urls),
    path("autocomplete-admin/", autocomplete_site.urls),
]
