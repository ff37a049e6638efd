"""``crossfk_recover``: finish what a crash left of a two-phase commit.

``crossfk.atomic(two_phase=True)`` numbers its databases, prepares the
first, then the others at once, and only once all are prepared commits the
first, then the others. So the prepared transactions a crash leaves behind
say what was decided: if the first database is no longer prepared, the
commit had begun and the rest must commit; if every database is still
prepared, the commit was decided and commits now; otherwise preparing never
finished and the prepared ones roll back. Recovery keeps that true if it is
itself interrupted: the first commits before the others, and rolls back
after them.

PostgreSQL lists the prepared transactions of the database connected to;
MariaDB and MySQL list those of the whole server (``XA RECOVER``), of which
a database finishes only those whose branch qualifier is its name.
"""

from collections import defaultdict
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connections

from crossfk.twophase import (
    PREPARED_GID,
    TWO_PHASE_VENDORS,
    finish_prepared,
    xa_branch,
)


def prepared_gids(alias: str) -> list[str]:
    """The gids of the transactions prepared in ``alias``'s database."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT gid FROM pg_prepared_xacts "
                "WHERE database = current_database() AND gid LIKE %s",
                ["crossfk:%"],
            )
            return [gid for (gid,) in cursor.fetchall()]
        cursor.execute("XA RECOVER")
        branch = xa_branch(connection)
        return [
            data[:gtrid_length].decode(errors="replace")
            for format_id, gtrid_length, bqual_length, data in cursor.fetchall()
            if format_id == 1
            and data[gtrid_length : gtrid_length + bqual_length] == branch
        ]


def prepared_blocks() -> dict[str, tuple[int, dict[int, tuple[str, str]]]]:
    """Every crossfk block with prepared transactions: its size and members."""
    sizes: dict[str, int] = {}
    members: defaultdict[str, dict[int, tuple[str, str]]] = defaultdict(dict)
    for alias in connections:
        if connections[alias].vendor not in TWO_PHASE_VENDORS:
            continue
        for match in filter(None, map(PREPARED_GID.match, prepared_gids(alias))):
            sizes[match["block"]] = int(match["count"])
            members[match["block"]][int(match["index"])] = (alias, match[0])
    return {block: (sizes[block], members[block]) for block in sizes}


def decided_to_commit(prepared: set[int], count: int) -> bool:
    """Whether a block whose members ``prepared`` (positions 1..``count`` in
    its numbering) are still prepared had decided to commit: the first one
    committed already, or every one is prepared."""
    return 1 not in prepared or len(prepared) == count


class Command(BaseCommand):
    help = (
        "Commit or roll back the transactions crossfk.atomic(two_phase=True) "
        "left prepared on PostgreSQL, MariaDB or MySQL after a crash."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        blocks = prepared_blocks()
        for block, (count, members) in sorted(blocks.items()):
            commit = decided_to_commit(set(members), count)
            gids = {alias: gid for _, (alias, gid) in sorted(members.items())}
            first = dict([members[1]]) if 1 in members else {}
            others = {alias: gid for alias, gid in gids.items() if alias not in first}
            for group in (first, others) if commit else (others, first):
                finish_prepared(group, commit=commit)
            self.stdout.write(
                f"{block}: {'committed' if commit else 'rolled back'} on "
                f"{', '.join(map(repr, gids))} ({len(members)} of {count} "
                f"databases were prepared)"
            )
        if not blocks:
            self.stdout.write("No prepared crossfk transactions.")
