"""Errors crossfk raises where Django has no type of its own."""

from django.db import DatabaseError, IntegrityError
from django.db.transaction import TransactionManagementError


class CrossDBIntegrityError(IntegrityError):
    """A write would leave a reference to a row missing from the other database.

    A subclass of ``django.db.IntegrityError`` so that code written for real
    foreign keys catches it unchanged.
    """


class CrossDBTransactionError(TransactionManagementError):
    """A write across databases that the open transactions could not undo.

    Raised before anything is written, when a database the write touches is
    inside a transaction that the other databases are not part of: Django
    would commit or roll that one back on its own, and a rollback would
    leave a dangling reference or lose rows in the others.
    """


class PartitionError(LookupError):
    """A model placed in several databases was used without saying which.

    Raised before any query, naming the model and its databases: name one
    with ``using(alias)`` or inside ``crossfk.partition(alias)``.
    """


class IdSetTooLarge(DatabaseError):
    """A set of ids too large for one statement on a MySQL or MariaDB server.

    Raised before the statement is sent, naming the field, the number of
    ids, the database and the server's ``max_allowed_packet``: sent, the
    server would drop the connection ("MySQL server has gone away").
    """
