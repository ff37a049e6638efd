"""What ``fanout.py`` loads, what it times, and the queries each should send.

Users live in "default"; user ``u``'s orders in tenant ``(u - 1) % N`` of
the N tenant aliases, or all in one alias (the yardstick). Each operation
returns what it reached, so the runner can check that every placement gave
the same answer. Import this module only once Django is set up.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.signals import setting_changed
from django.db import connections

from benchmarks.fanapp import ONE_ALIAS
from benchmarks.fanapp.models import Order, User

USERS = 1000
ORDERS_PER_USER = 5
DANGLING_ORDERS = 10  # orders of users 1001...: what crossfk_check finds
FILTER_TOTAL = 990  # totals run 0..999: 1% of orders, about 5% of users
DELETED_USERS = list(range(1, 9))  # one in each of the first 8 tenants
CHECK_BATCH_SIZE = 2000  # crossfk_check's default

Row = tuple[int, int, int]  # an order's id, user_id, total


def place_orders(aliases: list[str]) -> None:
    """Put ``Order`` in ``aliases``: read at each query, so it applies at once."""
    placement = aliases[0] if len(aliases) == 1 else aliases
    settings.CROSSFK_PARTITIONS = {"fanapp.Order": placement}
    # As override_settings() does: crossfk keeps each model's placement.
    setting_changed.send(
        sender=type(settings),
        setting="CROSSFK_PARTITIONS",
        value=settings.CROSSFK_PARTITIONS,
        enter=True,
    )


# Rows ----------------------------------------------------------------------------


def order_rows(user_ids: list[int]) -> list[Row]:
    """The users' orders: the same rows at every load."""
    return [
        (order_id, user_id, order_id * 37 % 1000)
        for user_id in user_ids
        for order_id in range(
            (user_id - 1) * ORDERS_PER_USER + 1, user_id * ORDERS_PER_USER + 1
        )
    ]


def dangling_rows() -> list[Row]:
    first = USERS * ORDERS_PER_USER
    return [(first + n, USERS + n, 0) for n in range(1, DANGLING_ORDERS + 1)]


def rows_by_alias(
    user_ids: list[int], aliases: list[str], with_dangling: bool = False
) -> dict[str, list[Row]]:
    """The orders of ``user_ids`` by the alias that holds them."""
    rows = order_rows(user_ids) + (dangling_rows() if with_dangling else [])
    by_alias: dict[str, list[Row]] = {}
    for row in rows:
        alias = aliases[(row[1] - 1) % len(aliases)]
        by_alias.setdefault(alias, []).append(row)
    return by_alias


def insert(alias: str, model, columns: str, rows: list[tuple]) -> None:
    """Rows written with plain SQL, behind crossfk's back (dangling ones too)."""
    connection = connections[alias]
    table = connection.ops.quote_name(model._meta.db_table)
    marks = ", ".join(["%s"] * len(rows[0]))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} {columns} VALUES ({marks})", rows)


def truncate(alias: str, model) -> None:
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {connection.ops.quote_name(model._meta.db_table)}")


def load(tenants: list[str], every_tenant: list[str]) -> None:
    """The users in default; their orders over ``tenants``, and all of them
    in the one alias; no orders in the other tenants."""
    truncate("default", User)
    users = [(n, f"user {n}") for n in range(1, USERS + 1)]
    insert("default", User, "(id, name)", users)
    user_ids = list(range(1, USERS + 1))
    for aliases in (tenants, [ONE_ALIAS]):
        for alias, rows in rows_by_alias(user_ids, aliases, True).items():
            truncate(alias, Order)
            insert(alias, Order, "(id, user_id, total)", rows)
    for alias in every_tenant[len(tenants) :]:
        truncate(alias, Order)
    for alias in ["default", ONE_ALIAS, *tenants]:
        with connections[alias].cursor() as cursor:
            cursor.execute("ANALYZE")
    connections.close_all()  # even those CONN_MAX_AGE would keep


def put_back_deleted(aliases: list[str]) -> None:
    """The deleted users and their orders, as they were."""
    insert("default", User, "(id, name)", [(n, f"user {n}") for n in DELETED_USERS])
    for alias, rows in rows_by_alias(DELETED_USERS, aliases).items():
        insert(alias, Order, "(id, user_id, total)", rows)


# What is timed -----------------------------------------------------------------


def reverse_prefetch() -> int:
    users = list(User.objects.prefetch_cross("orders"))
    return sum(1 for user in users for order in user.orders.all() if order.total >= 0)


def reverse_filter() -> int:
    return len(list(User.objects.filter(orders__total__gte=FILTER_TOTAL)))


def cascade_delete() -> int:
    deleted, _ = User.objects.filter(pk__in=DELETED_USERS).delete()
    return deleted


def check_orders() -> int:
    """``crossfk_check`` of the orders; the dangling references it reports."""
    stdout = StringIO()
    with contextlib.suppress(CommandError):  # exits non-zero: some dangle
        call_command("crossfk_check", "fanapp.Order.user", stdout=stdout)
    return sum(map(int, re.findall(r"(\d+) dangling", stdout.getvalue())))


# The queries each database receives, given the aliases the orders are in --------


def queries_of_read(aliases: list[str]) -> dict[str, int]:
    """The users in default; the orders (or their users' ids) in each alias."""
    return {"default": 1} | dict.fromkeys(aliases, 1)


def queries_of_delete(aliases: list[str]) -> dict[str, int]:
    """In default: read the users; then BEGIN, lock them, delete them,
    COMMIT (Django's capture counts BEGIN and COMMIT).

    In each alias of a model placed in several: whether it holds orders of
    theirs; where it does, BEGIN, delete them, COMMIT. An alias that holds
    none is left out of the delete's ``crossfk.atomic`` and not written,
    and asked again under the lock. A model in one alias: BEGIN, delete
    them, COMMIT.
    """
    if len(aliases) == 1:
        return {"default": 5} | dict.fromkeys(aliases, 3)
    holders = rows_by_alias(DELETED_USERS, aliases)
    return {"default": 5} | {alias: 4 if alias in holders else 2 for alias in aliases}


def queries_of_check(aliases: list[str]) -> dict[str, int]:
    """In each alias, its pages of orders, until a short one (an empty one
    after a full one); in default, the users of each round of pages, one
    page of each alias at once."""
    all_users = list(range(1, USERS + 1))
    rows = rows_by_alias(all_users, aliases, True)
    pages = {alias: math.ceil(len(rows[alias]) / CHECK_BATCH_SIZE) for alias in rows}
    return {"default": max(pages.values(), default=0)} | {
        alias: len(rows.get(alias, ())) // CHECK_BATCH_SIZE + 1 for alias in aliases
    }


@dataclass(frozen=True)
class Operation:
    label: str
    code: str
    run: Callable[[], int]
    queries: Callable[[list[str]], dict[str, int]]
    is_delete: bool = False


OPERATIONS = {
    "prefetch": Operation(
        "reverse prefetch",
        'prefetch_cross("orders")',
        reverse_prefetch,
        queries_of_read,
    ),
    "filter": Operation(
        "reverse filter",
        f"filter(orders__total__gte={FILTER_TOTAL})",
        reverse_filter,
        queries_of_read,
    ),
    "delete": Operation(
        "cascade delete",
        f"filter(pk__in=<{len(DELETED_USERS)} users>).delete()",
        cascade_delete,
        queries_of_delete,
        is_delete=True,
    ),
    "check": Operation(
        "scan",
        "crossfk_check fanapp.Order.user",
        check_orders,
        queries_of_check,
    ),
}


@dataclass(frozen=True)
class Mode:
    label: str
    max_parallel: int
    is_one_alias: bool = False

    def apply(self, tenants: list[str]) -> list[str]:
        """Use this mode; return the aliases the orders are in."""
        settings.CROSSFK_MAX_PARALLEL = self.max_parallel
        aliases = [ONE_ALIAS] if self.is_one_alias else tenants
        place_orders(aliases)
        return aliases


MODES = {
    "serial": Mode("serial", 1),
    "parallel": Mode("parallel (8)", 8),
    "one": Mode("one alias", 8, is_one_alias=True),
}
