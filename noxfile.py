"""The test matrix: Python x Django x database, and the checks beside it.

    nox -l                                         # every session
    nox -s "tests(3.12, django 6.1, mariadb)"      # one cell
    nox -s "tests(3.12, django 6.1, mariadb)" -- -x -k atomic   # pytest args
    nox -t ci                                      # what .ci/run runs

A session on a server vendor reads the servers from the environment
(CROSSFK_PG_HOST, CROSSFK_PG_PORT_DEFAULT, CROSSFK_PG_PORT_SECONDARY;
CROSSFK_MARIADB_PORT_DEFAULT, CROSSFK_MARIADB_PORT_SECONDARY) and never
starts one: ``.ci/pg start DIR`` and ``.ci/mariadb start DIR`` do.
"""

import os
import re
from pathlib import Path

import nox

# The Pythons each Django supports, of those crossfk supports: a change here
# is a change of the classifiers (tests/test_package.py holds them equal).
DJANGO_PYTHONS = {
    "5.2": ("3.11", "3.12", "3.13"),
    "6.0": ("3.12", "3.13"),
    "6.1": ("3.12", "3.13"),
}
# "a+b": "default" on a server of vendor a, "secondary" on one of vendor b.
DATABASES = (
    "sqlite",
    "postgresql",
    "mariadb",
    "postgresql+mariadb",
    "mariadb+sqlite",
    "sqlite+postgresql",
)
# What .ci/run runs (tag "ci") besides every Python and Django on SQLite:
# each server vendor on the oldest and newest Django, the pairings once.
CI_CELLS = {
    ("3.11", "5.2", "postgresql"),
    ("3.12", "6.1", "postgresql"),
    ("3.11", "5.2", "mariadb"),
    ("3.13", "6.1", "mariadb"),
    ("3.12", "6.0", "postgresql+mariadb"),
    ("3.13", "5.2", "mariadb+sqlite"),
}
# The script that starts a vendor's two servers, and the variables naming them.
SERVERS = {
    "postgresql": (".ci/pg", ("CROSSFK_PG_PORT_DEFAULT", "CROSSFK_PG_PORT_SECONDARY")),
    "mariadb": (
        ".ci/mariadb",
        ("CROSSFK_MARIADB_PORT_DEFAULT", "CROSSFK_MARIADB_PORT_SECONDARY"),
    ),
}

nox.options.reuse_venv = "yes"


def interpreter(version: str) -> str:
    """pyenv's newest build of ``version`` where there is one (pyenv's shims
    hide the versions it has not selected), else ``version`` for nox to find."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    builds = {
        int(path.parts[-3].rsplit(".", 1)[1]): path
        for path in root.glob(f"versions/{version}.*/bin/python{version}")
        if re.fullmatch(rf"{re.escape(version)}\.\d+", path.parts[-3])
    }
    return str(builds[max(builds)]) if builds else version


def django(version: str) -> str:
    """The requirement for Django ``version``'s newest patch release."""
    major, minor = version.split(".")
    return f"django>={version},<{major}.{int(minor) + 1}"


def require_servers(session: nox.Session, db: str) -> None:
    """Stop with the way to start the servers ``db`` needs where their
    variables are missing, rather than with a KeyError from the settings."""
    for vendor in set(db.split("+")) & set(SERVERS):
        script, variables = SERVERS[vendor]
        missing = [name for name in variables if name not in os.environ]
        if missing:
            session.error(
                f"{db} needs {', '.join(missing)}: start two {vendor} servers "
                f"with {script} start DIR, and export what it prints"
            )


def install(session: nox.Session, django_version: str, *extras: str) -> None:
    session.install("-e", f".[{','.join(extras)}]", django(django_version))


def cell(python: str, django_version: str, db: str, *, in_ci: bool):
    """One session's parameters, named "3.12, django 6.1, mariadb"."""
    return nox.param(
        interpreter(python),
        django_version,
        db,
        id=f"{python}, django {django_version}, {db}",
        tags=["ci"] if in_ci else [],
    )


@nox.session
@nox.parametrize(
    ("python", "django_version", "db"),
    [
        cell(
            python,
            django_version,
            db,
            in_ci=db == "sqlite" or (python, django_version, db) in CI_CELLS,
        )
        for django_version, pythons in DJANGO_PYTHONS.items()
        for python in pythons
        for db in DATABASES
    ],
)
def tests(session: nox.Session, django_version: str, db: str) -> None:
    """The suite on one Python, Django and database."""
    require_servers(session, db)
    install(session, django_version, "test", *(["mysql"] if "mariadb" in db else []))
    session.run(
        "python", "-m", "pytest", *(session.posargs or ["-q"]),
        env={"CROSSFK_TEST_DB": db},
    )  # fmt: skip


@nox.session(name="django-tests")
@nox.parametrize(
    ("python", "django_version", "db"),
    # Each Django on its oldest Python; CI runs the oldest and newest Django.
    [
        cell(pythons[0], django_version, db, in_ci=django_version != "6.0")
        for django_version, pythons in DJANGO_PYTHONS.items()
        for db in ("sqlite", "postgresql")
    ],
)
def django_tests(session: nox.Session, django_version: str, db: str) -> None:
    """Django's own foreign-key tests with the relations across two databases."""
    require_servers(session, db)
    install(session, django_version, "test")
    session.run(
        "python", "tests_django/run.py", *session.posargs, env={"CROSSFK_TEST_DB": db}
    )


@nox.session(python=interpreter("3.11"), tags=["ci"])
def e2e(session: nox.Session) -> None:
    """The demo site in Debian's Chromium (/usr/bin/chromium), by Playwright."""
    install(session, "5.2", "test", "e2e")
    session.run(
        "python", "-m", "pytest", "tests_e2e", *(session.posargs or ["-q"]),
        env={"CROSSFK_TEST_DB": "sqlite"},
    )  # fmt: skip


@nox.session(python=interpreter("3.11"), tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff, django-upgrade and validate-pyproject, as .pre-commit-config.yaml."""
    session.install(
        "ruff==0.17.6", "django-upgrade==1.33.0", "validate-pyproject==0.27"
    )
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("validate-pyproject", "pyproject.toml")
    python_files = session.run(
        "git", "ls-files", "*.py", ":!:**/migrations/*.py", silent=True, external=True
    )
    # django-upgrade rewrites what it would change, and then exits 1.
    session.run("django-upgrade", "--target-version", "5.2", *python_files.split())


@nox.session(python=interpreter("3.11"), tags=["ci"])
def typing(session: nox.Session) -> None:
    """mypy --strict with django-stubs for Django 5.2 ([tool.mypy])."""
    # The plugin sets up tests.settings, whose apps need the test extra.
    install(session, "5.2", "test", "typing")
    session.run("mypy")


@nox.session(python=interpreter("3.11"), tags=["ci"])
def docs(session: nox.Session) -> None:
    """The Sphinx site, warnings as errors, as Read the Docs builds it."""
    install(session, "5.2", "docs", "factories", "drf")
    session.run(
        "python", "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-E",
        "-b", "html", "docs", "docs/_build/html",
    )  # fmt: skip
