"""Test settings: SQLite by default, two PostgreSQL or MariaDB servers on
request, or one of each.

CROSSFK_TEST_DB names the vendor of the two servers: ``sqlite``,
``postgresql`` or ``mariadb`` for both, or a pairing such as
``postgresql+mariadb`` ("default" on the first vendor's server,
"secondary" on the second's), so that nothing can pass by accident through
a shared connection. PostgreSQL: CROSSFK_PG_HOST, CROSSFK_PG_PORT_DEFAULT,
CROSSFK_PG_PORT_SECONDARY (.ci/pg); MariaDB: CROSSFK_MARIADB_HOST,
CROSSFK_MARIADB_PORT_DEFAULT, CROSSFK_MARIADB_PORT_SECONDARY (.ci/mariadb).

Beside them, eight tenant aliases and four shard aliases for the shapes of
many databases: SQLite files of their own, or databases spread over the
same two servers (even numbers on the first, odd on the second).
"""

import os

BACKEND = os.environ.get("CROSSFK_TEST_DB", "sqlite")
VENDORS = BACKEND.split("+") if "+" in BACKEND else [BACKEND, BACKEND]
TENANTS = [f"tenant_{number}" for number in range(8)]
SHARDS = [f"shard_{number}" for number in range(4)]


# The servers' vendors: Django's engine, the prefix of the environment
# variables naming each server, its user, and what else the vendor needs.
SERVERS = {
    "postgresql": ("django.db.backends.postgresql", "CROSSFK_PG", "postgres", {}),
    "mariadb": (
        "django.db.backends.mysql",
        "CROSSFK_MARIADB",
        "root",
        {
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        },
    ),
}


def database(alias: str, server: str, suffix: str = "") -> dict:
    vendor = VENDORS[("default", "secondary").index(server)]
    if vendor == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": f"{alias}.sqlite3",
            # A transaction takes its write lock as it begins: two processes
            # writing to two databases then wait for each other in turn
            # (the deferred workers' tests) instead of failing "database is
            # locked" when each holds a read lock the other's write needs.
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        }
    if vendor not in SERVERS:
        raise ValueError(
            f"CROSSFK_TEST_DB={BACKEND!r}: use sqlite, postgresql, mariadb, or "
            f"two of them joined by '+'."
        )
    engine, prefix, user, extra = SERVERS[vendor]
    return {
        "ENGINE": engine,
        # A child process of the fault tests names the test database.
        "NAME": os.environ.get("CROSSFK_PG_NAME", "crossfk") + suffix,
        "USER": os.environ.get(f"{prefix}_USER", user),
        "HOST": os.environ.get(f"{prefix}_HOST", "127.0.0.1"),
        "PORT": os.environ[f"{prefix}_PORT_{server.upper()}"],
        **extra,
    }


def spread(aliases: list[str]) -> dict[str, dict]:
    """Each alias a database of its own, alternately on the two servers."""
    servers = ("default", "secondary")
    return {
        alias: database(alias, servers[number % 2], f"_{alias}")
        for number, alias in enumerate(aliases)
    }


DATABASES = {
    "default": database("default", "default"),
    "secondary": database("secondary", "secondary"),
    **spread(TENANTS),
    **spread(SHARDS),
}
DATABASE_ROUTERS = ["crossfk.routers.PartitionRouter"]
CROSSFK_PARTITIONS = {"testapp.Tag": "secondary"}
# Django 6's default task backend runs a task at once: the deferred actions'
# cleanup would then follow each committed delete. Tests enqueue and look.
TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "crossfk",
    "tests.testapp",
    "tests.lookuptwins",
    "tests.deletetwins",
    "tests.deletecases",
    "tests.deferred",
    "tests.tenants",
    "tests.shards",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
SECRET_KEY = "crossfk-tests"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# Django 5.2's transitional setting: URLField form fields assume https, as
# they do from 6.0 on (where the setting is gone).
FORMS_URLFIELD_ASSUME_HTTPS = True
