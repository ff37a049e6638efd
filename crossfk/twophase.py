"""Two-phase commit's transaction ids, and the statements that finish a
prepared transaction, for ``crossfk.atomic(two_phase=True)`` and
``crossfk_recover``: PostgreSQL's PREPARE TRANSACTION, and XA transactions
on MariaDB and MySQL.

None of these statements takes parameters, so every id spliced into them
is a crossfk id, checked by ``transaction_id()``.
"""

from __future__ import annotations

import re

from django.db import DatabaseError, NotSupportedError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from crossfk.parallel import run_per_alias

# Global transaction id of one participant: the block's id, the position of
# this database in the block's numbering (1 prepares and commits first), and
# how many databases took part.
PREPARED_GID = re.compile(
    r"^crossfk:(?P<block>[0-9a-f]{32}):(?P<index>\d+):(?P<count>\d+)$"
)

# The vendors whose two-phase commit crossfk drives.
TWO_PHASE_VENDORS = ("postgresql", "mysql")

# MariaDB's answer to XA COMMIT of a branch that wrote nothing: it prepared
# it without keeping anything to commit (XA_RBROLLBACK).
XA_READ_ONLY_BRANCH = 1402


def prepared_gid(block_id: str, index: int, count: int) -> str:
    return f"crossfk:{block_id}:{index}:{count}"


def transaction_id(connection: BaseDatabaseWrapper, gid: str) -> str:
    """``gid`` as the SQL of PREPARE TRANSACTION, XA START and the statements
    that finish them, which take no parameters: it is spliced into SQL, so
    only a crossfk gid passes.

    On MariaDB and MySQL the branch qualifier is the database's name, in
    hexadecimal (any name is safe so): XA RECOVER lists the branches of the
    whole server, and ``crossfk_recover`` finishes only each database's own.
    """
    if not PREPARED_GID.match(gid):
        raise ValueError(f"Not a crossfk transaction id: {gid!r}")
    if connection.vendor == "postgresql":
        return f"'{gid}'"
    branch = xa_branch(connection)
    if len(branch) > 64:
        raise NotSupportedError(
            f"two_phase=True on {connection.alias!r}: XA names a branch in at "
            f"most 64 bytes, and the database name {branch!r} is longer."
        )
    return f"'{gid}', X'{branch.hex()}'"


def xa_branch(connection: BaseDatabaseWrapper) -> bytes:
    """The branch qualifier of ``connection``'s XA transactions."""
    return str(connection.settings_dict["NAME"]).encode()


def finish_prepared(gids: dict[str, str], commit: bool) -> None:
    """COMMIT or ROLLBACK each alias's prepared transaction, at once."""
    verb = "COMMIT" if commit else "ROLLBACK"

    def finish(alias: str) -> None:
        connection = connections[alias]
        xid = transaction_id(connection, gids[alias])
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"{verb} PREPARED {xid}")
                return
            try:
                cursor.execute(f"XA {verb} {xid}")
            except DatabaseError as error:
                if not (commit and error.args[0] == XA_READ_ONLY_BRANCH):
                    raise

    run_per_alias(finish, gids, lend=True)
