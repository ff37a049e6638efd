"""Sphinx configuration: ``python -m sphinx -W -b html docs docs/_build/html``."""

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
