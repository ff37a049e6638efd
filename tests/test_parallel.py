"""``crossfk.parallel``: one call per database, at once, each on its own
connection; one after the other where a transaction is open."""

import os
import signal
import threading
from contextlib import suppress

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, transaction
from django.test import override_settings

from crossfk import atomic, fan_out, partition
from crossfk.parallel import max_parallel, meanwhile, run_per_alias, runs_serially
from crossfk.testing import assert_queries_per_db
from tests.factories import CustomerFactory, OrderFactory
from tests.tenants.models import TENANTS, Customer, Note, Order

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


# Lent connections: crossfk's own steps in one database each ---------------------


def test_lent_calls_run_at_once_on_the_callers_connections_in_its_transaction():
    customer = CustomerFactory()
    callers = {alias: connections[alias] for alias in TENANTS}
    together = threading.Barrier(len(TENANTS), timeout=10)

    def call(alias):
        together.wait()
        count = Order.objects.using(alias).count()
        return threading.get_ident(), connections[alias] is callers[alias], count

    with transaction.atomic(using="tenant_2"):
        Order.objects.using("tenant_2").create(customer=customer)
        seen = run_per_alias(call, TENANTS, lend=True)
    assert threading.get_ident() not in {thread for thread, _, _ in seen.values()}
    assert all(lent for _, lent, _ in seen.values())
    assert {alias: count for alias, (_, _, count) in seen.items()} == {
        alias: int(alias == "tenant_2") for alias in TENANTS
    }
    assert Order.objects.using("tenant_2").count() == 1  # committed by the caller


@override_settings(CROSSFK_MAX_PARALLEL=2)
def test_after_a_lent_call_a_worker_uses_its_own_connection_again():
    aliases = TENANTS[:2]
    callers = {alias: connections[alias] for alias in aliases}
    both = threading.Barrier(2, timeout=10)  # each round uses both threads

    def lent(alias):
        both.wait()
        connections[alias].ensure_connection()

    def any_callers(alias):
        both.wait()
        return any(connections[other] is callers[other] for other in aliases)

    run_per_alias(lent, aliases, lend=True)
    assert run_per_alias(any_callers, aliases) == dict.fromkeys(aliases, False)


def test_meanwhile_the_caller_runs_its_task_while_the_workers_run():
    task_ran = threading.Event()
    ran_in = []

    def task():
        ran_in.append(threading.get_ident())
        task_ran.set()

    # Every call waits for the task: it must run while they do.
    with meanwhile(task):
        done = run_per_alias(lambda alias: task_ran.wait(10), TENANTS)
    assert done == dict.fromkeys(TENANTS, True)
    assert ran_in == [threading.get_ident()]


def test_an_error_of_the_meanwhile_task_is_raised_once_every_call_ended():
    ended = []

    def task():
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError, match="refused"), meanwhile(task):
        run_per_alias(lambda alias: ended.append(alias), TENANTS)
    assert sorted(ended) == sorted(TENANTS)


# A delete over the tenants, written and committed at once -------------------------


def statement_threads(aliases, *, meet=False):
    """Record, per alias, the thread each DELETE ran in: {alias: {thread}}.

    With ``meet``, each DELETE waits (up to 5 s) until DELETEs have run in
    two threads: a pool thread quick enough to take every alias's step in
    turn then cannot pass for parallel work, nor hide it."""
    threads = {alias: set() for alias in aliases}
    lock, two_threads = threading.Lock(), threading.Event()

    def wrapper_for(alias):
        def record(execute, sql, params, many, context):
            if sql.startswith("DELETE"):
                with lock:
                    threads[alias].add(threading.get_ident())
                    if len(set().union(*threads.values())) > 1:
                        two_threads.set()
                if meet:
                    two_threads.wait(timeout=5)
            return execute(sql, params, many, context)

        return record

    return threads, [
        connections[alias].execute_wrapper(wrapper_for(alias)) for alias in aliases
    ]


def notes_in_every_tenant():
    customer, other = CustomerFactory.create_batch(2)
    for alias in TENANTS:
        Note.objects.using(alias).create(customer=customer)
        Note.objects.using(alias).create(customer=other)
    return customer, other


@pytest.mark.parametrize("max_parallel", [8, 1])
def test_a_cascade_deletes_in_every_tenant_at_once(max_parallel):
    customer, other = notes_in_every_tenant()
    threads, wrappers = statement_threads(TENANTS, meet=max_parallel > 1)
    with override_settings(CROSSFK_MAX_PARALLEL=max_parallel):
        for wrapper in wrappers:
            wrapper.__enter__()
        try:
            deleted = customer.delete()
        finally:
            for wrapper in wrappers:
                wrapper.__exit__(None, None, None)
    assert deleted == (9, {"tenants.Customer": 1, "tenants.Note": 8})
    every_thread = set().union(*threads.values())
    if max_parallel == 1:
        assert every_thread == {threading.get_ident()}
    else:
        assert threading.get_ident() not in every_thread
        assert len(every_thread) > 1
    assert {
        alias: list(Note.objects.using(alias).values_list("customer", flat=True))
        for alias in TENANTS
    } == {alias: [other.pk] for alias in TENANTS}
    assert list(Customer.objects.all()) == [other]


def refuse_deletes(alias):
    """A trigger that makes every DELETE of a note in ``alias`` fail."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "CREATE TRIGGER refuse BEFORE DELETE ON tenants_note "
                "BEGIN SELECT RAISE(ABORT, 'notes are kept'); END"
            )
            return "DROP TRIGGER refuse"
        if connection.vendor == "mysql":
            cursor.execute(
                "CREATE TRIGGER refuse BEFORE DELETE ON tenants_note FOR EACH ROW "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'notes are kept'"
            )
            return "DROP TRIGGER refuse"
        cursor.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'notes are kept'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON tenants_note "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        return "DROP TRIGGER refuse ON tenants_note; DROP FUNCTION refuse()"


@pytest.mark.parametrize("outer", [False, True])
def test_a_delete_failing_in_one_tenant_writes_nothing_in_any(outer):
    customer, other = notes_in_every_tenant()
    undo = refuse_deletes("tenant_5")
    try:
        with pytest.raises(DatabaseError, match="notes are kept") as raised:
            if outer:  # the delete's block is inside the caller's
                with atomic("default", *TENANTS):
                    customer.delete()
            else:
                customer.delete()
    finally:
        with connections["tenant_5"].cursor() as cursor:
            cursor.execute(undo)
    assert "(in database 'tenant_5', asked with" in raised.value.__notes__[0]
    assert sorted(Customer.objects.values_list("pk", flat=True)) == sorted(
        [customer.pk, other.pk]
    )
    assert {alias: Note.objects.using(alias).count() for alias in TENANTS} == (
        dict.fromkeys(TENANTS, 2)
    )
