"""Run Django's own foreign-key tests with the relations moved across databases.

    python tests_django/run.py [--app many_to_one ...] [-v 2]

Django's test suite ships in its source distribution: this script downloads
the one of the installed Django from PyPI (once, into tests_django/.cache),
copies the apps many_to_one, many_to_one_null, delete and prefetch_related,
rewrites their models with ``placement.convert()`` (ForeignKeys between the
two databases become CrossDBForeignKeys), and runs their tests with Django's
runner on two databases ("default" and "other": SQLite, or the two
PostgreSQL servers of the crossfk suite with ``CROSSFK_TEST_DB=postgresql``).

The tests that fail are compared with ``expected.EXPECTED_FAILURES``, each
with the reason crossfk cannot or should not give Django's answer there. The
script fails when another test fails, and when a listed one passes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's crossfk first

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from expected import COUNTS_ONE_DATABASE, EXPECTED_FAILURES  # noqa: E402
from placement import convert  # noqa: E402

APPS = ["many_to_one", "many_to_one_null", "delete", "prefetch_related"]


def django_tests(cache: Path) -> Path:
    """The ``tests`` folder of the installed Django's sdist, downloaded once."""
    version = django.get_version()
    unpacked = cache / f"django-{version}"
    if not unpacked.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"django=={version}", "--dest", str(cache)],
            check=True,
        )  # fmt: skip
        (archive,) = cache.glob(f"[Dd]jango-{version}.tar.gz")
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/tests/" in m.name]
            tar.extractall(cache, members=members, filter="data")
    return unpacked / "tests"


def prepare(source: Path, work: Path, apps: list[str]) -> dict[str, str]:
    """Copy ``apps`` into ``work`` with converted models; return the placement."""
    partitions = {}
    for app in apps:
        target = work / app
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source / app, target)
        converted, aliases, crossing = convert((source / app / "models.py").read_text())
        (target / "models.py").write_text(converted)
        partitions |= {f"{app}.{model}": alias for model, alias in aliases.items()}
        print(f"{app}: {crossing} ForeignKeys cross databases", file=sys.stderr)
    return partitions


def databases() -> dict:
    if os.environ.get("CROSSFK_TEST_DB", "sqlite") != "postgresql":
        return {
            alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
            for alias in ("default", "other")
        }
    return {
        alias: {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("CROSSFK_PG_NAME", "crossfk") + "_django",
            "USER": os.environ.get("CROSSFK_PG_USER", "postgres"),
            "HOST": os.environ.get("CROSSFK_PG_HOST", "127.0.0.1"),
            "PORT": os.environ[f"CROSSFK_PG_PORT_{variable}"],
        }
        for alias, variable in (("default", "DEFAULT"), ("other", "SECONDARY"))
    }


def configure(apps: list[str], partitions: dict[str, str]) -> None:
    settings.configure(
        DATABASES=databases(),
        DATABASE_ROUTERS=["crossfk.routers.PartitionRouter"],
        CROSSFK_PARTITIONS=partitions,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "crossfk",
            *apps,
        ],
        # As Django's own runtests.py: contrib apps are synced with the test
        # apps, so that their tables exist when the apps' constraints are made.
        MIGRATION_MODULES={"auth": None, "contenttypes": None},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
        SECRET_KEY="crossfk-django-tests",
        SILENCED_SYSTEM_CHECKS=["crossfk.W001"],
    )
    django.setup()


def run(apps: list[str], verbosity: int) -> tuple[unittest.TestResult, set[str]]:
    from django.test import TransactionTestCase
    from django.test.runner import DiscoverRunner
    from django.test.utils import iter_test_cases

    class TwoDatabaseRunner(DiscoverRunner):
        """Django's runner, with every database test allowed both aliases."""

        def build_suite(self, *args, **kwargs):
            suite = super().build_suite(*args, **kwargs)
            self.test_ids = {test.id() for test in iter_test_cases(suite)}
            for test in iter_test_cases(suite):
                if isinstance(test, TransactionTestCase):
                    type(test).databases = {"default", "other"}
            return suite

        def run_suite(self, suite, **kwargs):
            self.result = super().run_suite(suite, **kwargs)
            return self.result

    runner = TwoDatabaseRunner(verbosity=verbosity, interactive=False)
    runner.run_tests(apps)
    return runner.result, runner.test_ids


def failed_ids(result: unittest.TestResult) -> set[str]:
    """``app.tests.Class.test`` of every failure and error."""
    failed = set()
    for test, _ in [*result.failures, *result.errors]:
        test_id = test.id()
        failed.add(test_id.split(" ")[0])
    return failed


def compare(failed: set[str], test_ids: set[str]) -> int:
    """Report the failures not listed, and the listed tests that passed.

    A listed test that this Django version does not have is not counted,
    nor one that only counts queries and happens to pass on this backend.
    """
    expected = set(EXPECTED_FAILURES) & test_ids
    unexpected = sorted(failed - expected)
    fixed = sorted(
        test_id
        for test_id in expected - failed
        if EXPECTED_FAILURES[test_id] != COUNTS_ONE_DATABASE
    )
    for test_id in unexpected:
        print(f"UNEXPECTED FAILURE: {test_id}")
    for test_id in fixed:
        print(f"LISTED BUT PASSES (remove it from expected.py): {test_id}")
    print(
        f"{len(failed)} failed, {len(failed & expected)} of them listed in "
        f"tests_django/expected.py with their reasons"
    )
    return 1 if unexpected or fixed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", action="append", choices=APPS, dest="apps")
    parser.add_argument("-v", "--verbosity", type=int, default=1)
    options = parser.parse_args()
    apps = options.apps or APPS
    cache = HERE / ".cache"
    work = cache / "apps"
    work.mkdir(parents=True, exist_ok=True)
    partitions = prepare(django_tests(cache), work, apps)
    sys.path.insert(0, str(work))
    configure(apps, partitions)
    result, test_ids = run(apps, options.verbosity)
    return compare(failed_ids(result), test_ids)


if __name__ == "__main__":
    sys.exit(main())
