"""Settings for the crossfk demo: a blog whose posts and links live in two
SQLite databases, placed by crossfk's router.

CROSSFK_DEMO_VAR names the directory of the two database files (default:
demo/var/); the browser tests point it at a temporary directory.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# SQLite creates database files but not their directory; var/ is git-ignored.
VAR_DIR = Path(os.environ.get("CROSSFK_DEMO_VAR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "crossfk-demo-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crossfk",
    "blog",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Last: each view in one crossfk.atomic over every database.
    "crossfk.middleware.AtomicRequestsMiddleware",
]

# The browser tests run the server with the guardrails of crossfk.testing.
if os.environ.get("CROSSFK_DEMO_GUARD"):
    MIDDLEWARE.insert(0, "demo_site.guard.GuardCrossDatabaseMiddleware")

ROOT_URLCONF = "demo_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Post (and Django's own apps) live in "default", Link in "secondary": each
# model's MultiDBManager says where, and the router follows it for reads,
# writes and migrations.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "primary.sqlite3",
    },
    "secondary": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "secondary.sqlite3",
    },
}
# ./demo/run --tenants N: a database per tenant beside them, for the orders
# of the shop app (demo/shop).
TENANT_COUNT = int(os.environ.get("CROSSFK_DEMO_TENANTS") or 0)
for number in range(TENANT_COUNT):
    DATABASES[f"tenant_{number}"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / f"tenant_{number}.sqlite3",
    }
DATABASE_ROUTERS = ["crossfk.routers.PartitionRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# With DEBUG, `demo --serve` (runserver from staticfiles) serves the admin's
# CSS and JavaScript from the installed apps: no collectstatic for a demo.
STATIC_URL = "static/"
# Django 5.2's transitional setting: URLField form fields assume https, as
# they do from 6.0 on (where the setting is gone).
FORMS_URLFIELD_ASSUME_HTTPS = True
