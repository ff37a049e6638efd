"""``crossfk.parallel`` on PostgreSQL: workers leave no connection open.

(SQLite's in-memory test databases are never closed, by Django's design.)
"""

import time

import pytest
from django.db import connections

from crossfk.parallel import close_worker_connections, run_per_alias
from tests.factories import CustomerFactory
from tests.tenants.models import TENANTS, Note

pytestmark = [
    pytest.mark.django_db(databases=["default", *TENANTS], transaction=True),
    pytest.mark.vendors(default="postgresql", secondary="postgresql"),
]


def backends_on(alias):
    """How many connections the database of ``alias`` has, this one aside,
    once those just closed are gone: a server process leaves pg_stat_activity
    a moment after its client hangs up (under load, after the next query)."""
    deadline = time.monotonic() + 5
    with connections[alias].cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            (count,) = cursor.fetchone()
            if count == 0 or time.monotonic() > deadline:
                return count
            time.sleep(0.05)


def read_in_worker(alias):
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
    return connections[alias]


def test_workers_close_their_connections_after_each_call():
    used = run_per_alias(read_in_worker, TENANTS)
    assert all(connection.connection is None for connection in used.values())
    assert {alias: backends_on(alias) for alias in TENANTS} == dict.fromkeys(TENANTS, 0)


def test_kept_connections_are_closed_when_the_pool_stops():
    # What each new thread's connection is made from.
    for alias in TENANTS:
        connections.settings[alias]["CONN_MAX_AGE"] = 60
    try:
        kept = run_per_alias(read_in_worker, TENANTS)
        assert all(connection.connection is not None for connection in kept.values())
        close_worker_connections()
        assert {alias: backends_on(alias) for alias in TENANTS} == dict.fromkeys(
            TENANTS, 0
        )
    finally:
        for alias in TENANTS:
            connections.settings[alias]["CONN_MAX_AGE"] = 0


def test_a_delete_keeps_connections_only_to_the_tenants_it_wrote_in():
    customer, other = CustomerFactory.create_batch(2)
    Note.objects.using("tenant_3").create(customer=customer)
    Note.objects.using("tenant_5").create(customer=other)
    connections.close_all()
    deleted = customer.delete()
    assert deleted == (2, {"tenants.Customer": 1, "tenants.Note": 1})
    # Every tenant was asked whether it holds notes of the customer; only
    # the one that did is still connected, until the request ends.
    open_now = [alias for alias in TENANTS if connections[alias].connection]
    assert open_now == ["tenant_3"]
    assert sum(backends_on(alias) for alias in TENANTS) == 0
