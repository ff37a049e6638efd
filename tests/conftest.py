"""Collect the tests that apply to this run's backends and Django.

A test (or a module, through ``pytestmark``) that needs a vendor on some
alias says so: ``@pytest.mark.vendors(default="postgresql")`` (Django's
``connection.vendor``: "postgresql", "mysql" for MariaDB and MySQL,
"sqlite"; a tuple allows several). Runs whose aliases are on other vendors
deselect it, rather than report it skipped. Tests of Django 6.1 features
live in ``*_django61.py`` modules, not collected on older Djangos.
"""

import django
import pytest
from django.db import connections

collect_ignore_glob = []
if django.VERSION < (6, 0):
    collect_ignore_glob.append("*_django60.py")
if django.VERSION < (6, 1):
    collect_ignore_glob.append("*_django61.py")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "vendors(**aliases): collected only where each named alias runs on "
        "the given vendor (or one of a tuple of them)",
    )


def runs_here(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("vendors")
    if marker is None:
        return True
    for alias, vendors in marker.kwargs.items():
        allowed = (vendors,) if isinstance(vendors, str) else tuple(vendors)
        if connections[alias].vendor not in allowed:
            return False
    return True


def pytest_collection_modifyitems(config, items):
    deselected = [item for item in items if not runs_here(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if runs_here(item)]
