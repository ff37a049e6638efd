"""``crossfk_recover``: finish what a crash left of a two-phase commit.

``crossfk.atomic(two_phase=True)`` numbers its databases in commit order,
prepares the first, then the others at once, and only once all are
prepared commits the first, then the others. So the prepared transactions a
crash leaves behind say what was decided: if the first database is no longer
prepared, the commit had begun and the rest must commit; if every database
is still prepared, the commit was decided and commits now; otherwise
preparing never finished and the prepared ones roll back.
"""

from collections import defaultdict
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connections

from crossfk.transaction import PREPARED_GID, finish_prepared


def prepared_blocks() -> dict[str, tuple[int, dict[int, tuple[str, str]]]]:
    """Every crossfk block with prepared transactions: its size and members."""
    sizes: dict[str, int] = {}
    members: defaultdict[str, dict[int, tuple[str, str]]] = defaultdict(dict)
    for alias in connections:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT gid FROM pg_prepared_xacts "
                "WHERE database = current_database() AND gid LIKE %s",
                ["crossfk:%"],
            )
            gids = [gid for (gid,) in cursor.fetchall()]
        for match in filter(None, map(PREPARED_GID.match, gids)):
            sizes[match["block"]] = int(match["count"])
            members[match["block"]][int(match["index"])] = (alias, match[0])
    return {block: (sizes[block], members[block]) for block in sizes}


def decided_to_commit(prepared: set[int], count: int) -> bool:
    """Whether a block whose members ``prepared`` (positions 1..``count`` in
    commit order) are still prepared had decided to commit: the first one
    committed already, or every one is prepared."""
    return 1 not in prepared or len(prepared) == count


class Command(BaseCommand):
    help = (
        "Commit or roll back the transactions crossfk.atomic(two_phase=True) "
        "left prepared on PostgreSQL after a crash."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        blocks = prepared_blocks()
        for block, (count, members) in sorted(blocks.items()):
            commit = decided_to_commit(set(members), count)
            gids = {alias: gid for _, (alias, gid) in sorted(members.items())}
            finish_prepared(gids, commit=commit)
            self.stdout.write(
                f"{block}: {'committed' if commit else 'rolled back'} on "
                f"{', '.join(map(repr, gids))} ({len(members)} of {count} "
                f"databases were prepared)"
            )
        if not blocks:
            self.stdout.write("No prepared crossfk transactions.")
