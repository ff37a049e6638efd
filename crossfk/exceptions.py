"""Errors crossfk raises where Django has no type of its own."""

from django.db import IntegrityError


class CrossDBIntegrityError(IntegrityError):
    """A write would leave a reference to a row missing from the other database.

    A subclass of ``django.db.IntegrityError`` so that code written for real
    foreign keys catches it unchanged.
    """
