"""``./demo/run --tenants N``: customers in "default", each tenant's orders in
a database of its own, and the queries each database runs when crossfk
reads, filters, checks and deletes across all of them."""

from collections.abc import Callable
from io import StringIO
from typing import Any

from blog.querycount import count_queries
from django.contrib.auth import get_user_model
from django.core.management import call_command

from crossfk import CrossQuerySet, fan_out, partition
from shop.models import TENANTS, Order

ORDERS_PER_CUSTOMER = 3


def seed(customers: int) -> list[Any]:
    """Customers in "default"; each one's orders spread over the tenants."""
    User = get_user_model()
    users = [
        User.objects.create_user(username=f"customer{number}")
        for number in range(customers)
    ]
    for number, user in enumerate(users):
        for order in range(ORDERS_PER_CUSTOMER):
            tenant = TENANTS[(number + order) % len(TENANTS)]
            with partition(tenant):
                Order.objects.create(customer=user, total=10 * (order + 1))
    return users


def empty_shop() -> None:
    get_user_model().objects.all().delete()
    fan_out(Order.objects.all()).delete()


def crossfk_check() -> str:
    stdout = StringIO()
    call_command("crossfk_check", "shop", stdout=stdout)
    return f"{stdout.getvalue().count(': 0 dangling')} databases clean"


def steps(
    users: list[Any],
) -> list[tuple[str, Callable[[], Any], Callable[[Any], str]]]:
    first, User = users[0], get_user_model()
    return [
        (
            'User.objects.prefetch_related("orders")',
            lambda: [
                (u.username, len(u.orders.all()))
                for u in User.objects.prefetch_related("orders")
            ],
            lambda rows: f"{len(rows)} customers, {sum(n for _, n in rows)} orders",
        ),
        (
            "fan_out(Order.objects.all()).count()",
            lambda: fan_out(Order.objects.all()).count(),
            lambda count: f"{count} orders",
        ),
        (
            f"in partition({TENANTS[0]!r}): customer.orders.count()",
            lambda: in_partition(TENANTS[0], lambda: first.orders.count()),
            lambda count: f"{count} orders there",
        ),
        (
            "CrossQuerySet(User).filter(orders__total__gte=30)",
            lambda: list(CrossQuerySet(User).filter(orders__total__gte=30)),
            lambda rows: f"{len(rows)} customers",
        ),
        ("crossfk_check shop", crossfk_check, str),
        (
            f"customer.delete() ({first.username})",
            lambda: first.delete(),
            lambda deleted: f"{deleted[1].get('shop.Order', 0)} orders deleted",
        ),
    ]


def in_partition(alias: str, action: Callable[[], Any]) -> Any:
    with partition(alias):
        return action()


def report(
    write: Callable[..., None], format_table: Callable[..., str], customers: int
) -> None:
    aliases = ["default", *TENANTS]
    call_command("migrate_all", verbosity=0, interactive=False, parallel=4)
    empty_shop()
    users = seed(customers)
    write(
        f"crossfk demo, a database per tenant: {customers} customers in 'default', "
        f"{ORDERS_PER_CUSTOMER} orders each over {len(TENANTS)} tenant databases",
        "",
    )
    rows = []
    for label, action, summarize in steps(users):
        with count_queries(aliases) as counts:
            result = action()
        rows.append([label, *(counts[alias] for alias in aliases), summarize(result)])
    write("Queries per database", format_table(["step", *aliases, "result"], rows), "")
    write(
        "  Reading every tenant is one query per database, asked at once",
        "  (CROSSFK_MAX_PARALLEL); inside crossfk.partition(alias), only that one.",
        "  The delete's queries include each database's BEGIN and COMMIT: one",
        "  crossfk.atomic over 'default' and the tenants that held orders.",
    )
