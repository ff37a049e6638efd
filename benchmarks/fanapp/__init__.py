"""The many-database benchmark's models: users, and orders in a database per
tenant; and the names of those databases."""

ONE_ALIAS = "one_alias"  # every order in one database: the yardstick


def tenant_aliases(count: int) -> list[str]:
    """The aliases of ``count`` tenants' databases."""
    return [f"tenant_{number:02}" for number in range(count)]
