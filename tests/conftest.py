"""Collect the modules that only apply to this run's backend and Django.

Tests of PostgreSQL-only features live in ``*_postgresql.py`` modules and
tests of Django 6.1 features in ``*_django61.py`` ones; the other runs of
the CI matrix do not collect them, rather than reporting them skipped.
"""

import django
from django.conf import settings

collect_ignore_glob = []
if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    collect_ignore_glob.append("*_postgresql.py")
if django.VERSION < (6, 1):
    collect_ignore_glob.append("*_django61.py")
