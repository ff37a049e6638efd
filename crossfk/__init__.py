"""Foreign keys between Django models that live in different databases."""

from crossfk.deferred import DEFERRED_CASCADE, DEFERRED_SET, DEFERRED_SET_NULL
from crossfk.exceptions import (
    CrossDBIntegrityError,
    CrossDBTransactionError,
    IdSetTooLarge,
    PartitionError,
)
from crossfk.fanout import fan_out
from crossfk.fields import CrossDBForeignKey
from crossfk.managers import MultiDBManager
from crossfk.placement import partition
from crossfk.query import CrossQuerySet
from crossfk.resolvers import Resolver
from crossfk.transaction import atomic

__version__ = "0.1.0"  # The one place: pyproject.toml reads it from here.

__all__ = [
    "DEFERRED_CASCADE",
    "DEFERRED_SET",
    "DEFERRED_SET_NULL",
    "CrossDBForeignKey",
    "CrossDBIntegrityError",
    "CrossDBTransactionError",
    "CrossQuerySet",
    "IdSetTooLarge",
    "MultiDBManager",
    "PartitionError",
    "Resolver",
    "atomic",
    "fan_out",
    "partition",
]
