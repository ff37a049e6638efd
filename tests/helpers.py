"""What several test modules share: comparing ids, and Hypothesis settings."""

import os

from hypothesis import HealthCheck, settings


def ids(queryset) -> list:
    """The primary keys a queryset gives, sorted."""
    return sorted(queryset.values_list("pk", flat=True))


def pks(*instances) -> list:
    """The primary keys of ``instances``, sorted."""
    return sorted(instance.pk for instance in instances)


def differential_settings(examples: int) -> settings:
    """Settings for the differential tests: ``examples`` unless overridden.

    CI runs the fixed, derandomized default. ``CROSSFK_HYPOTHESIS_EXAMPLES``
    runs more, and ``CROSSFK_HYPOTHESIS_SEED`` (any value) draws new
    examples instead of the fixed ones.
    """
    return settings(
        max_examples=int(os.environ.get("CROSSFK_HYPOTHESIS_EXAMPLES", examples)),
        derandomize=os.environ.get("CROSSFK_HYPOTHESIS_SEED") is None,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
