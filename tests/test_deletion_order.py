"""Deleting across databases as Django deletes in one: RESTRICT and order.

Each test builds the same graph in two forms (tests/deletecases): across
"default" and "secondary" with CrossDBForeignKeys, and its twin in
"default" with ordinary ForeignKeys. The twin, deleted by Django's own
Collector, is the expectation: which rows go, which error is raised with
which message, and which signals are sent in which order, each receiver
reading what the rows it references still hold.
"""

from contextlib import ExitStack
from types import SimpleNamespace

import pytest
from django.contrib.admin.utils import NestedObjects
from django.db import connections
from django.db.models import RestrictedError, signals

from crossfk.locking import SHARED_LOCKS
from crossfk.testing import assert_queries_per_db
from tests.deletecases import factories

pytestmark = pytest.mark.django_db(databases=["default", "secondary"])


ROLES = {
    "target": "Target",
    "dependent": "Dependent",
    "restricted": "Restricted",
    "cascaded": "Cascaded",
    "pinned": "Pinned",
    "parent": "Parent",
    "child": "Child",
    "nullable_child": "NullableChild",
}


def graph_form(graph_factories):
    """The factories of one form of the graphs, by role, and the models they make."""
    by_role = {role: graph_factories[name] for role, name in ROLES.items()}
    graph_models = [made._meta.model for made in by_role.values()]
    return SimpleNamespace(models=graph_models, **by_role)


FORMS = {
    "crossfk": graph_form(factories.CROSS_FACTORIES),
    "twin": graph_form(factories.TWIN_FACTORIES),
}
CROSSFK = FORMS["crossfk"]


def model_name(model):
    return model.__name__.removeprefix("Twin")


def without_twin(text):
    return text.replace("Twin", "")


def delete_instance(row):
    return row.delete()


def delete_queryset(row):
    return type(row).objects.filter(pk=row.pk).delete()


DELETES = pytest.mark.parametrize(
    "delete", [delete_instance, delete_queryset], ids=["instance", "queryset"]
)


def remaining_rows(form):
    """``{model name: {row names}}`` of every graph model, in its database."""
    return {
        model_name(model): set(model._base_manager.values_list("name", flat=True))
        for model in form.models
    }


def deleted_counts(deleted):
    total, per_model = deleted
    return total, {without_twin(label): count for label, count in per_model.items()}


# Graphs ------------------------------------------------------------------------


def restricted_and_cascaded(form):
    """Target t; every row restricted by one path is cascaded by another.

    t restricts d and r, and cascades them through s; s restricts p, and t
    cascades p directly.
    """
    target = form.target(name="t")
    cascaded = form.cascaded(name="s", target=target)
    form.restricted(name="r", target=target, cascaded=cascaded)
    form.dependent(name="d", target=target, cascaded=cascaded)
    form.pinned(name="p", target=target, cascaded=cascaded)
    return target


def restricted_elsewhere(form, blocking):
    """Target t and a row of ``blocking`` kind that t restricts and no path cascades.

    "restricted" and "dependent" rows reference t but cascade with the
    Cascaded of a target that stays; a "pinned" row references the target
    that stays but is restricted by t's Cascaded.
    """
    target = form.target(name="t")
    kept_target = form.target(name="kept")
    if blocking == "pinned":
        cascaded = form.cascaded(name="s", target=target)
        form.pinned(name="blocking", target=kept_target, cascaded=cascaded)
    else:
        kept_cascaded = form.cascaded(name="kept", target=kept_target)
        getattr(form, blocking)(name="blocking", target=target, cascaded=kept_cascaded)
    return target


def children(form, child_kinds):
    """Parent p with two children of each kind ("child", "nullable_child")."""
    parent = form.parent(name="p")
    for kind in child_kinds:
        for number in (1, 2):
            getattr(form, kind)(name=f"{kind}{number}", parent=parent)
    return parent


# RESTRICT ----------------------------------------------------------------------


@DELETES
def test_rows_restricted_by_one_path_and_cascaded_by_another_are_deleted(delete):
    results = {}
    for name, form in FORMS.items():
        deleted = delete(restricted_and_cascaded(form))
        results[name] = (deleted_counts(deleted), remaining_rows(form))

    assert results["crossfk"] == results["twin"]
    assert results["crossfk"][0] == (
        5,
        {
            "deletecases.Target": 1,
            "deletecases.Cascaded": 1,
            "deletecases.Restricted": 1,
            "deletecases.Dependent": 1,
            "deletecases.Pinned": 1,
        },
    )


def test_rows_restricted_and_cascaded_cost_the_selects_of_djangos_twin():
    target = restricted_and_cascaded(CROSSFK)
    locks_rows = connections["default"].vendor in SHARED_LOCKS

    # The seven SELECTs Django sends for the twin, each in its table's
    # database. default: Dependent restricted by t, then read again to clear
    # it against its fast delete (through s); SAVEPOINT, DELETE Dependent,
    # DELETE Target, RELEASE. secondary: Restricted restricted by t, Cascaded
    # cascaded by t, Pinned restricted by s, Restricted and Pinned read again
    # against their fast deletes; SAVEPOINT, DELETE Restricted, Pinned,
    # Cascaded, RELEASE. Where rows are locked, under the lock (t in default,
    # s in secondary): Restricted and Cascaded read again, and Restricted
    # cleared again against its fast delete.
    with assert_queries_per_db(
        {"default": 6 + locks_rows, "secondary": 10 + 4 * locks_rows}
    ):
        target.delete()


BLOCKING_FIELDS = {
    "restricted": "Restricted.target",
    "dependent": "Dependent.target",
    "pinned": "Pinned.cascaded",
}


@DELETES
@pytest.mark.parametrize("blocking", list(BLOCKING_FIELDS))
def test_restricted_row_no_path_cascades_raises_djangos_error(delete, blocking):
    raised = {}
    for name, form in FORMS.items():
        target = restricted_elsewhere(form, blocking)
        rows_before = remaining_rows(form)
        with pytest.raises(RestrictedError) as error:
            delete(target)
        assert remaining_rows(form) == rows_before
        raised[name] = (
            without_twin(str(error.value.args[0])),
            {
                (model_name(type(row)), row.name)
                for row in error.value.restricted_objects
            },
        )

    assert raised["crossfk"] == raised["twin"]
    assert raised["crossfk"] == (
        "Cannot delete some instances of model 'Target' because they are "
        f"referenced through restricted foreign keys: '{BLOCKING_FIELDS[blocking]}'.",
        {(blocking.capitalize(), "blocking")},
    )


@pytest.mark.parametrize(
    ("build", "protected_names"),
    [
        (restricted_and_cascaded, set()),
        (lambda form: restricted_elsewhere(form, "restricted"), {"blocking"}),
        (lambda form: restricted_elsewhere(form, "dependent"), {"blocking"}),
        (lambda form: restricted_elsewhere(form, "pinned"), {"blocking"}),
    ],
    ids=[
        "cascaded-elsewhere",
        "restricted-blocks",
        "dependent-blocks",
        "pinned-blocks",
    ],
)
def test_admin_confirmation_lists_as_protected_only_the_rows_that_block(
    build, protected_names
):
    protected = {}
    for name, form in FORMS.items():
        collector = NestedObjects(using="default")
        collector.collect([build(form)])
        protected[name] = {row.name for row in collector.protected}

    assert protected["crossfk"] == protected["twin"] == protected_names


# Order and signals -------------------------------------------------------------


def references_exist(instance):
    """Whether every row ``instance`` references can still be read."""
    return all(
        field.related_model._base_manager.filter(
            **{field.target_field.attname: getattr(instance, field.attname)}
        ).exists()
        for field in instance._meta.concrete_fields
        if field.is_relation and getattr(instance, field.attname) is not None
    )


def signals_sent(form, delete, row):
    """``delete(row)``'s pre_delete and post_delete signals, as Django sent them.

    Each entry: (signal, model name, row name, whether the rows it references
    could still be read from the receiver).
    """
    sent = []

    def record(sender, instance, signal, **kwargs):
        name = "pre_delete" if signal is signals.pre_delete else "post_delete"
        sent.append(
            (name, model_name(sender), instance.name, references_exist(instance))
        )

    with ExitStack() as connected:
        for model in form.models:
            for signal in (signals.pre_delete, signals.post_delete):
                signal.connect(record, sender=model, weak=False)
                connected.callback(signal.disconnect, record, sender=model)
        delete(row)
    return sent


@DELETES
def test_signals_across_databases_follow_djangos_order(delete):
    sent = {
        name: signals_sent(form, delete, restricted_and_cascaded(form))
        for name, form in FORMS.items()
    }

    assert sent["crossfk"] == sent["twin"]
    # Django deletes referencing rows before what they reference: every
    # receiver still reads the rows its row references.
    assert [entry[:2] for entry in sent["crossfk"]] == [
        (signal, model)
        for signal in ("pre_delete", "post_delete")
        for model in ("Dependent", "Restricted", "Pinned", "Cascaded", "Target")
    ]
    assert all(readable for *_, readable in sent["crossfk"])


@DELETES
@pytest.mark.parametrize(
    "child_kinds",
    [("child",), ("nullable_child",), ("nullable_child", "child")],
    ids=["non-null", "nullable", "both"],
)
def test_signal_order_follows_djangos_for_nullable_and_non_null_relations(
    delete, child_kinds
):
    sent = {
        name: signals_sent(form, delete, children(form, child_kinds))
        for name, form in FORMS.items()
    }

    assert sent["crossfk"] == sent["twin"]


def test_post_delete_receiver_of_a_non_null_reference_still_reads_its_target():
    sent = signals_sent(CROSSFK, delete_instance, children(CROSSFK, ["child"]))

    # Within a model Django sends post_delete in descending primary key order.
    assert sent == [
        ("pre_delete", "Child", "child1", True),
        ("pre_delete", "Child", "child2", True),
        ("pre_delete", "Parent", "p", True),
        ("post_delete", "Child", "child2", True),
        ("post_delete", "Child", "child1", True),
        ("post_delete", "Parent", "p", True),
    ]


def test_nullable_references_are_deleted_after_their_target_as_in_django():
    sent = signals_sent(CROSSFK, delete_instance, children(CROSSFK, ["nullable_child"]))

    # A nullable relation orders nothing: Django keeps the order in which
    # it collected the models, the target first.
    assert sent == [
        ("pre_delete", "Parent", "p", True),
        ("pre_delete", "NullableChild", "nullable_child1", True),
        ("pre_delete", "NullableChild", "nullable_child2", True),
        ("post_delete", "Parent", "p", True),
        ("post_delete", "NullableChild", "nullable_child2", False),
        ("post_delete", "NullableChild", "nullable_child1", False),
    ]


def test_signals_carry_the_rows_own_alias_and_the_deletes_origin():
    target = restricted_and_cascaded(CROSSFK)
    sent = []

    def record(sender, instance, using, origin, **kwargs):
        sent.append((model_name(sender), using, origin is target))

    with ExitStack() as connected:
        for model in CROSSFK.models:
            signals.post_delete.connect(record, sender=model, weak=False)
            connected.callback(signals.post_delete.disconnect, record, sender=model)
        target.delete()

    assert sent == [
        ("Dependent", "default", True),
        ("Restricted", "secondary", True),
        ("Pinned", "secondary", True),
        ("Cascaded", "secondary", True),
        ("Target", "default", True),
    ]
