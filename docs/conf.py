"""Sphinx configuration.

Build: ``python -m sphinx -W --keep-going -n -b html docs docs/_build/html``.
"""

import os
import sys
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The API reference imports crossfk, which needs configured settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

import crossfk  # noqa: E402

project = "crossfk"
author = "crossfk developers"
copyright = "crossfk developers"
release = crossfk.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"description": crossfk.__doc__.strip().splitlines()[0]}

# Every cross-reference must resolve (-n), in CI and on Read the Docs too.
# There is no intersphinx (the build must not need the network), so the
# types that annotations take from Python and Django, and crossfk's type
# variables, stay plain text; nothing else may be left unresolved.
nitpicky = True
nitpick_ignore_regex = [
    ("py:class", r"(collections(\.abc)?|datetime|django)\..+"),
    # Names annotations import from Django only for type checkers.
    ("py:class", r"HttpRequest|HttpResponse|Prefetch|Query|QuerySet|models\.Model"),
    ("py:class", r"BaseDatabaseWrapper"),
    ("py:class", r"(crossfk\.query\.)?(ModelT|RowT)|crossfk\.parallel\.T"),
]
