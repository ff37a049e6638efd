"""``crossfk.parallel``: one call per database, at once, each on its own
connection; one after the other where a transaction is open."""

import os
import signal
import threading
from contextlib import suppress

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings

from crossfk import fan_out, partition
from crossfk.parallel import max_parallel, run_per_alias, runs_serially
from crossfk.testing import assert_queries_per_db
from tests.factories import CustomerFactory, OrderFactory
from tests.tenants.models import TENANTS, Order

pytestmark = pytest.mark.django_db(databases=["default", *TENANTS], transaction=True)


def test_each_call_runs_on_its_own_database_and_results_keep_the_order():
    customer = CustomerFactory()
    for number, alias in enumerate(TENANTS):
        Order.objects.using(alias).create(customer=customer, total=number)
    found = run_per_alias(
        lambda alias: Order.objects.using(alias).get().total, reversed(TENANTS)
    )
    assert found == {alias: TENANTS.index(alias) for alias in reversed(TENANTS)}
    assert list(found) == list(reversed(TENANTS))


def test_calls_run_at_the_same_time():
    # Each call waits for all the others: run one after the other, the
    # first would wait alone and the barrier would break.
    together = threading.Barrier(len(TENANTS), timeout=10)
    threads = run_per_alias(
        lambda alias: (together.wait(), threading.get_ident())[1], TENANTS
    )
    assert len(set(threads.values())) == len(TENANTS)
    assert threading.get_ident() not in threads.values()


@override_settings(CROSSFK_MAX_PARALLEL=3)
def test_at_most_max_parallel_calls_run_at_once():
    running, most, lock = 0, 0, threading.Lock()
    four_at_once = threading.Barrier(4, timeout=0.5)

    def call(alias):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        with suppress(threading.BrokenBarrierError):
            four_at_once.wait()  # breaks: never four at once
        with lock:
            running -= 1

    run_per_alias(call, TENANTS)
    assert most == 3


def test_inside_a_transaction_calls_run_on_the_callers_connection():
    customer = CustomerFactory()
    with transaction.atomic(using="tenant_2"):
        Order.objects.using("tenant_2").create(customer=customer)
        threads = run_per_alias(lambda alias: threading.get_ident(), TENANTS)
        seen = run_per_alias(lambda alias: Order.objects.using(alias).count(), TENANTS)
    assert set(threads.values()) == {threading.get_ident()}
    assert seen == {alias: int(alias == "tenant_2") for alias in TENANTS}


@override_settings(CROSSFK_MAX_PARALLEL=1)
def test_max_parallel_one_runs_on_the_callers_thread():
    threads = run_per_alias(lambda alias: threading.get_ident(), TENANTS)
    assert set(threads.values()) == {threading.get_ident()}
    assert runs_serially(TENANTS)


@pytest.mark.parametrize("value", [0, -1, "8", 2.5, True])
def test_a_bad_max_parallel_is_refused(value):
    with (
        override_settings(CROSSFK_MAX_PARALLEL=value),
        pytest.raises(
            ImproperlyConfigured, match=f"CROSSFK_MAX_PARALLEL is {value!r}; it must be"
        ),
    ):
        max_parallel()


def test_an_error_is_raised_after_every_call_ended():
    ended = []

    def call(alias):
        if alias in ("tenant_5", "tenant_3"):
            raise ValueError(alias)
        ended.append(alias)

    with pytest.raises(ValueError, match="tenant_3"):
        run_per_alias(call, TENANTS)
    assert sorted(ended) == sorted(set(TENANTS) - {"tenant_3", "tenant_5"})


def test_a_fan_out_inside_a_call_runs_in_that_worker():
    inner = run_per_alias(
        lambda alias: set(
            run_per_alias(lambda _: threading.get_ident(), TENANTS).values()
        ),
        TENANTS,
    )
    assert all(len(threads) == 1 for threads in inner.values())


def test_query_counts_are_the_same_at_once_and_one_after_the_other():
    customer = CustomerFactory()
    for alias in TENANTS[::2]:
        with partition(alias):
            OrderFactory(customer=customer)
    expected = {**dict.fromkeys(TENANTS, 1), "default": 1}
    with assert_queries_per_db(expected) as parallel:
        assert len(list(fan_out(Order.objects.prefetch_cross("customer")))) == 4
    with (
        override_settings(CROSSFK_MAX_PARALLEL=1),
        assert_queries_per_db(expected) as serial,
    ):
        assert len(list(fan_out(Order.objects.prefetch_cross("customer")))) == 4
    for alias in expected:
        assert [q["sql"] for q in parallel[alias].captured_queries] == [
            q["sql"] for q in serial[alias].captured_queries
        ]


def test_the_error_says_in_which_database_it_was_raised():
    def call(alias):
        if alias == "tenant_4":
            raise ValueError("no")

    with pytest.raises(ValueError) as raised:
        run_per_alias(call, TENANTS)
    assert raised.value.__notes__ == ["(in database 'tenant_4', asked with 7 more)"]


# Forking a process with threads is the case under test (Python 3.12+ warns).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_starts_a_pool_of_its_own():
    run_per_alias(lambda alias: alias, TENANTS)  # the parent's pool exists
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            signal.alarm(10)  # the parent's pool, threadless here, would hang
            both = threading.Barrier(2, timeout=5)
            ran = run_per_alias(
                lambda alias: (both.wait(), threading.get_ident())[1], TENANTS[:2]
            )
            os.write(writer, str(len(set(ran.values()))).encode())
        finally:
            os._exit(0)
    os.close(writer)
    _, status = os.waitpid(child, 0)
    assert os.read(reader, 16) == b"2"
    assert status == 0
