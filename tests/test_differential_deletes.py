"""on_delete across databases does what a ForeignKey does: a differential test.

Hypothesis draws rows for the delete graph of ``tests.deletetwins`` (every
``on_delete`` action, several paths to one row, relations from "default" to
"secondary" and back) and loads them, with the same primary keys, into the
cross family (two databases) and its twin (ordinary ForeignKeys, one
database). It then deletes the same rows from both, by ``instance.delete()``
or ``QuerySet.delete()``, and asserts the same outcome (counts, or the same
error with the same blocking rows), the same rows left in every table, and
the same ``pre_delete``/``post_delete`` signals in the same order.

Nothing differs on purpose. ``CROSSFK_HYPOTHESIS_EXAMPLES`` raises the
number of examples for a long local run; CI runs the derandomized default.
"""

from contextlib import contextmanager

import pytest
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError, signals
from hypothesis import given
from hypothesis import strategies as st

from crossfk import atomic
from tests.deletetwins.models import CROSS, TWIN
from tests.factories import factories_for
from tests.helpers import differential_settings

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])

CROSS_FACTORIES, TWIN_FACTORIES = factories_for(CROSS), factories_for(TWIN)
DIFFERENTIAL = differential_settings(examples=100)
TARGETS = 3
# Model name -> (how many rows at most, {relation attname: (target, nullable)}).
GRAPH = {
    "Target": (TARGETS, {}),
    "Child": (4, {"target_id": ("Target", False)}),
    "NullChild": (2, {"target_id": ("Target", True)}),
    "Protected": (2, {"target_id": ("Target", True)}),
    "Restricted": (2, {"target_id": ("Target", True), "child_id": ("Child", True)}),
    "Nulling": (2, {"target_id": ("Target", True)}),
    "Defaulting": (2, {"target_id": ("Target", True)}),
    "Setting": (2, {"target_id": ("Target", True)}),
    "Ignoring": (1, {"target_id": ("Target", True)}),
    "GrandChild": (3, {"child_id": ("Child", False), "target_id": ("Target", True)}),
    "Leaf": (2, {"grandchild_id": ("GrandChild", True)}),
}


@st.composite
def data_sets(draw) -> dict[str, list[dict]]:
    """Rows per model name; the same for both families."""
    rows = {}
    for name, (most, relations) in GRAPH.items():
        least = most if name == "Target" else 0
        rows[name] = []
        for row_id in range(1, draw(st.integers(least, most)) + 1):
            row = {"id": row_id, "name": f"{name}{row_id}"}
            for attname, (target, nullable) in relations.items():
                choices = [target_row["id"] for target_row in rows[target]]
                if nullable:
                    choices.append(None)
                if not choices:
                    break  # A non-null reference with nothing to point at.
                row[attname] = draw(st.sampled_from(choices))
            else:
                rows[name].append(row)
    return rows


@st.composite
def deletes(draw, rows):
    """(model name, "instance" or "queryset", primary keys)."""
    name = draw(st.sampled_from(["Target", "Child", "GrandChild", "Restricted"]))
    pks = [row["id"] for row in rows[name]]
    if not pks:
        return name, "queryset", []
    if draw(st.booleans()):
        return name, "instance", [draw(st.sampled_from(pks))]
    return name, "queryset", draw(st.lists(st.sampled_from(pks), unique=True))


def unprefixed(text: str) -> str:
    return text.replace("Cross", "").replace("Twin", "")


@contextmanager
def recorded_signals(family):
    """The delete signals of ``family``'s models, as (signal, model, pk)."""
    models = set(vars(family).values())
    sent = []

    def record(signal_name):
        def receiver(sender, instance, **kwargs):
            if sender in models:
                sent.append((signal_name, unprefixed(sender.__name__), instance.pk))

        return receiver

    pre, post = record("pre_delete"), record("post_delete")
    signals.pre_delete.connect(pre, weak=False)
    signals.post_delete.connect(post, weak=False)
    try:
        yield sent
    finally:
        signals.pre_delete.disconnect(pre)
        signals.post_delete.disconnect(post)


def outcome_of(family, name, how, pks):
    """What the delete returned, or the error it raised with the blocking rows."""
    model = getattr(family, name)
    try:
        with atomic("default", "secondary"):
            if how == "instance":
                total, counts = model.objects.get(pk=pks[0]).delete()
            else:
                total, counts = model.objects.filter(pk__in=pks).delete()
    except (ProtectedError, RestrictedError) as error:
        blocking = getattr(error, "protected_objects", None) or error.restricted_objects
        return (
            type(error),
            unprefixed(str(error)),
            sorted((unprefixed(type(obj).__name__), obj.pk) for obj in blocking),
        )
    return total, {unprefixed(label): count for label, count in counts.items()}


def table_contents(family):
    return {
        name: sorted(model.objects.values_list(), key=repr)
        for name, model in vars(family).items()
    }


def delete_and_observe(family, factories, rows, delete, with_signals):
    for name, model_rows in rows.items():
        for row in model_rows:
            factories[name](**row)
    if with_signals:
        with recorded_signals(family) as sent:
            outcome = outcome_of(family, *delete)
    else:
        sent, outcome = [], outcome_of(family, *delete)
    return outcome, sent, table_contents(family)


@DIFFERENTIAL
@given(data=st.data(), with_signals=st.booleans())
def test_deletes_do_what_a_foreign_key_does(data, with_signals):
    # Without receivers Django may fast-delete; with them it sends signals.
    rows = data.draw(data_sets(), label="rows")
    delete = data.draw(deletes(rows), label="delete")
    observed = []
    for family, factories in ((CROSS, CROSS_FACTORIES), (TWIN, TWIN_FACTORIES)):
        with atomic("default", "secondary"):
            observed.append(
                delete_and_observe(family, factories, rows, delete, with_signals)
            )
            # One database's rollback is both databases' rollback.
            transaction.set_rollback(True, using="default")
    crossfk, django = observed
    assert crossfk[0] == django[0], "outcome"
    assert crossfk[2] == django[2], "rows left"
    assert crossfk[1] == django[1], "signals"
