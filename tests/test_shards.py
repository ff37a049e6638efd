"""The shard shape, by hash: accounts spread over four shards by a hash of
their UUID (``crossfk.resolvers.Hash``); events and holds in "default",
notes in every shard, each referring to an account through the resolver."""

import uuid
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.db.models import Prefetch, ProtectedError, prefetch_related_objects
from django.forms import modelform_factory

from crossfk import CrossDBIntegrityError, PartitionError, atomic, fan_out, partition
from crossfk.placement import placement_for_model
from crossfk.testing import assert_queries_per_db
from tests.factories import AccountFactory, EventFactory, HoldFactory, NoteFactory
from tests.shards.models import SHARDS, Account, Event, Hold, Note

pytestmark = pytest.mark.django_db(databases=["default", *SHARDS])


def key_in(shard, nth=0):
    """The ``nth`` UUID (counting from ``UUID(int=1)``) whose hash places
    it in ``shard``."""
    resolver = placement_for_model(Account)
    keys = (uuid.UUID(int=n) for n in range(1, 1000))
    return [key for key in keys if resolver.alias_of(key) == shard][nth]


def account_in(shard, nth=0, **kwargs):
    return AccountFactory(id=key_in(shard, nth), **kwargs)


def queries(**counts):
    """Expected query counts: those given, none on the other shards."""
    return dict.fromkeys(SHARDS, 0) | counts


def accounts_by_shard():
    """{shard: [account ids]} for the shards that hold accounts."""
    found = {
        alias: sorted(Account.objects.using(alias).values_list("id", flat=True))
        for alias in SHARDS
    }
    return {alias: ids for alias, ids in found.items() if ids}


def delete_behind_crossfks_back(account):
    """Remove ``account``'s row without crossfk's actions: dangling ids."""
    connection = connections[account._state.db]
    table = connection.ops.quote_name(Account._meta.db_table)
    pk = Account._meta.pk.get_db_prep_value(account.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])


@pytest.fixture
def spread():
    """Accounts in shards 0, 2 and 3 (none in 1), two events each, in that
    order."""
    accounts = [account_in(alias) for alias in ("shard_0", "shard_2", "shard_3")]
    events = [EventFactory(account=account) for account in accounts * 2]
    return accounts, events


# Placement ---------------------------------------------------------------------


def test_each_shard_has_the_account_table_and_default_has_none():
    def tables(alias):
        with connections[alias].cursor() as cursor:
            return connections[alias].introspection.table_names(cursor)

    assert all("shards_account" in tables(alias) for alias in SHARDS)
    assert "shards_account" not in tables("default")
    assert "shards_event" not in tables("shard_0")


def test_a_new_account_is_saved_in_the_shard_its_key_hashes_to():
    account = Account(id=key_in("shard_2"), name="Ann")
    with assert_queries_per_db(queries(shard_2=1, default=0)):
        account.save()
    assert account._state.db == "shard_2"
    assert accounts_by_shard() == {"shard_2": [account.pk]}


def test_create_with_no_alias_places_the_row_by_its_key():
    account = Account.objects.create(id=key_in("shard_3"), name="Bob")
    assert account._state.db == "shard_3"
    assert Account.objects.using("shard_3").get().name == "Bob"


def test_a_new_row_goes_where_its_key_hashes_whatever_the_partition():
    with partition("shard_0"):
        account = account_in("shard_1")
    assert accounts_by_shard() == {"shard_1": [account.pk]}


def test_using_names_the_shard_a_row_is_created_in():
    account = Account.objects.using("shard_1").create(id=key_in("shard_1"))
    assert account._state.db == "shard_1"
    assert accounts_by_shard() == {"shard_1": [account.pk]}


def test_a_query_that_names_no_shard_raises():
    with pytest.raises(PartitionError, match=r"shards\.Account lives in 4 databases"):
        Account.objects.count()


# Forward access ----------------------------------------------------------------


def test_an_event_reads_its_account_from_its_shard_in_one_query():
    account = account_in("shard_2")
    EventFactory(account=account)
    event = Event.objects.get()
    with assert_queries_per_db(queries(shard_2=1, default=0)):
        assert event.account == account
        assert event.account._state.db == "shard_2"


def test_a_dangling_account_is_named_with_the_shard_it_was_looked_for_in():
    event = EventFactory(account=account_in("shard_3"))
    delete_behind_crossfks_back(event.account)
    event = Event.objects.get()
    with pytest.raises(Event.account.RelatedObjectDoesNotExist) as raised:
        event.account  # noqa: B018
    assert str(raised.value) == (
        f"Event.account of Event {event.pk!r} refers to Account with id "
        f"{event.account_id!r}, which does not exist in database 'shard_3'."
    )
    assert isinstance(raised.value, Account.DoesNotExist)


# Prefetch ----------------------------------------------------------------------


def test_prefetching_accounts_reads_each_shard_that_holds_some_once(spread):
    accounts, events = spread
    with assert_queries_per_db(queries(default=1, shard_0=1, shard_2=1, shard_3=1)):
        fetched = list(Event.objects.order_by("id").prefetch_cross("account"))
        assert [event.account for event in fetched] == accounts * 2
    assert fetched == events


def test_values_across_to_the_accounts_read_every_shard_once(spread):
    accounts, _ = spread
    expected = queries(default=1, shard_0=1, shard_1=1, shard_2=1, shard_3=1)
    with assert_queries_per_db(expected):
        rows = list(Event.objects.order_by("id").values_list("id", "account__name"))
    assert [name for _, name in rows] == [a.name for a in accounts * 2]


def test_djangos_prefetch_goes_through_the_resolver_too(spread):
    accounts, _ = spread
    events = list(Event.objects.order_by("id"))
    with assert_queries_per_db(queries(shard_0=1, shard_2=1, shard_3=1)):
        prefetch_related_objects(events, "account")
        assert [event.account for event in events] == accounts * 2


def test_a_prefetch_queryset_is_read_in_each_shard(spread):
    accounts, _ = spread
    account_in("shard_2", nth=1, name="Other")  # held by no event
    accounts[1].name = "Zed"
    accounts[1].save()
    only_zed = Prefetch(
        "account", queryset=Account.objects.filter(name="Zed"), to_attr="zed"
    )
    with assert_queries_per_db(queries(default=1, shard_0=1, shard_2=1, shard_3=1)):
        events = list(Event.objects.order_by("id").prefetch_related(only_zed))
        assert [event.zed for event in events[:3]] == [None, accounts[1], None]


def test_notes_from_several_shards_prefetch_their_accounts_once_per_shard():
    ann, bob = account_in("shard_0", name="Ann"), account_in("shard_2", name="Bob")
    for alias, account in [("shard_1", ann), ("shard_3", bob), ("shard_0", bob)]:
        with partition(alias):
            NoteFactory(account=account)
    with assert_queries_per_db(queries(shard_0=2, shard_1=1, shard_2=2, shard_3=1)):
        notes = list(fan_out(Note.objects.prefetch_cross("account")))
        assert [note.account.name for note in notes] == ["Bob", "Ann", "Bob"]
    assert [note._state.db for note in notes] == ["shard_0", "shard_1", "shard_3"]


def test_a_prefetched_dangling_id_leaves_none():
    account = account_in("shard_1")
    with partition("shard_0"):
        NoteFactory(account=account)
        delete_behind_crossfks_back(account)
        (note,) = Note.objects.prefetch_cross("account")
    assert note.account is None


# Integrity ---------------------------------------------------------------------


def test_an_event_for_a_missing_account_is_refused_naming_its_shard():
    missing = key_in("shard_1")
    with (
        assert_queries_per_db(queries(shard_1=1, default=0)),
        pytest.raises(CrossDBIntegrityError) as raised,
    ):
        Event.objects.create(account_id=missing, kind="login")
    assert str(raised.value) == (
        f"Event.account: no Account with id {missing!r} in database 'shard_1'. "
        f"Save the Account first, or declare the field with enforce=False to "
        f"allow dangling ids."
    )
    assert not Event.objects.exists()


def test_bulk_create_asks_each_shard_once_for_the_whole_batch(spread):
    accounts, _ = spread
    events = [Event(account=account, kind="bulk") for account in accounts * 3]
    with assert_queries_per_db(queries(default=1, shard_0=1, shard_2=1, shard_3=1)):
        Event.objects.bulk_create(events)
    assert Event.objects.filter(kind="bulk").count() == 9


def test_missing_accounts_in_several_shards_are_each_named_with_theirs(spread):
    accounts, _ = spread
    lost = [key_in("shard_1"), key_in("shard_3", nth=1)]
    events = [Event(account_id=key, kind="bulk") for key in [accounts[0].pk, *lost]]
    with pytest.raises(CrossDBIntegrityError) as raised:
        Event.objects.bulk_create(events)
    shown = "; ".join(
        f"{key!r} in database '{alias}'"
        for key, alias in sorted(
            zip(lost, ["shard_1", "shard_3"], strict=True), key=str
        )
    )
    assert str(raised.value).startswith(f"Event.account: no Account with id {shown}.")
    assert not Event.objects.filter(kind="bulk").exists()


def test_full_clean_looks_the_account_up_in_its_shard():
    account = account_in("shard_0")
    with assert_queries_per_db(queries(shard_0=1)):
        Event(account=account, kind="x").full_clean()
    missing = key_in("shard_3")
    with pytest.raises(ValidationError) as raised:
        Event(account_id=missing, kind="x").full_clean()
    assert raised.value.message_dict == {
        "account": [
            f"account instance with id {missing!r} does not exist in database "
            f"'shard_3'."
        ]
    }


def test_a_model_form_lists_every_shards_accounts_and_finds_the_chosen_one(spread):
    accounts, _ = spread
    EventForm = modelform_factory(Event, fields=["account", "kind"])
    form = EventForm()
    # A count, then the rows, as Django's choices do for list().
    with assert_queries_per_db(queries(shard_0=2, shard_1=2, shard_2=2, shard_3=2)):
        choices = list(form.fields["account"].choices)
    assert {str(value) for value, _ in choices[1:]} == {str(a.pk) for a in accounts}

    chosen = accounts[1]
    form = EventForm(data={"account": str(chosen.pk), "kind": "form"})
    assert form.is_valid(), form.errors
    assert form.save().account == chosen
    missing = EventForm(data={"account": str(key_in("shard_1")), "kind": "form"})
    assert not missing.is_valid()
    assert missing.errors["account"][0].startswith("Select a valid choice.")


def test_crossfk_check_counts_dangling_events_one_query_per_shard(spread):
    accounts, _ = spread
    delete_behind_crossfks_back(accounts[1])
    stdout = StringIO()
    with (
        assert_queries_per_db(queries(shard_0=1, shard_2=1, shard_3=1)),
        pytest.raises(CommandError, match="2 dangling reference"),
    ):
        call_command("crossfk_check", "shards.Event", stdout=stdout)
    assert stdout.getvalue() == (
        "shards.Event.account -> shards.Account (shard_0, shard_1, shard_2, "
        "shard_3): 2 dangling\n"
    )


# Filters across the relation -----------------------------------------------------


def test_a_filter_across_asks_every_shard_once(spread):
    accounts, events = spread
    accounts[1].name = "Zed"
    accounts[1].save()
    zeds = Event.objects.filter(account__name="Zed").order_by("id")
    every_shard = dict.fromkeys(SHARDS, 1)
    with assert_queries_per_db({**every_shard, "default": 1}):
        assert list(zeds) == [events[1], events[4]]
    others = Event.objects.exclude(account__name="Zed").order_by("id")
    assert list(others) == [events[0], events[2], events[3], events[5]]


# Deleting an account -----------------------------------------------------------


def test_deleting_an_account_cascades_to_its_events_in_default(spread):
    accounts, events = spread
    kept = [event.pk for event in events if event.account_id != accounts[1].pk]
    deleted = accounts[1].delete()
    assert deleted == (3, {"shards.Account": 1, "shards.Event": 2})
    assert accounts_by_shard() == {
        "shard_0": [accounts[0].pk],
        "shard_3": [accounts[2].pk],
    }
    assert sorted(Event.objects.values_list("pk", flat=True)) == kept


def test_a_hold_protects_its_account_before_anything_is_deleted(spread):
    accounts, _ = spread
    hold = HoldFactory(account=accounts[0])
    with pytest.raises(ProtectedError) as raised:
        accounts[0].delete()
    assert raised.value.protected_objects == {hold}
    assert Account.objects.using("shard_0").get() == accounts[0]
    assert Event.objects.filter(account=accounts[0]).count() == 2
    assert Hold.objects.get() == hold


def test_deleting_an_account_sets_its_notes_to_null_in_every_shard():
    account, other = account_in("shard_0"), account_in("shard_2")
    for alias in ("shard_1", "shard_3"):
        with partition(alias):
            NoteFactory(account=account)
            NoteFactory(account=other)
    account.delete()
    notes = sorted(fan_out(Note.objects.all()), key=lambda n: (n._state.db, n.pk))
    assert [(note._state.db, note.account_id) for note in notes] == [
        ("shard_1", None),
        ("shard_1", other.pk),
        ("shard_3", None),
        ("shard_3", other.pk),
    ]


@pytest.mark.django_db(databases=["default", *SHARDS], transaction=True)
def test_a_fanned_out_delete_of_accounts_cascades_in_one_atomic_block(spread):
    accounts, events = spread
    HoldFactory(account=accounts[2])
    doomed = Account.objects.exclude(pk=accounts[2].pk)
    with atomic("default", *SHARDS):
        deleted = fan_out(doomed).delete()
    assert deleted == (6, {"shards.Event": 4, "shards.Account": 2})
    assert accounts_by_shard() == {"shard_3": [accounts[2].pk]}
    assert list(Event.objects.order_by("id")) == [events[2], events[5]]


@pytest.mark.django_db(databases=["default", *SHARDS], transaction=True)
def test_a_fanned_out_delete_opens_its_block_over_the_databases_it_cascades_to(
    spread,
):
    accounts, events = spread
    doomed = Account.objects.exclude(pk=accounts[2].pk)
    deleted = fan_out(doomed).delete()
    assert deleted == (6, {"shards.Event": 4, "shards.Account": 2})
    assert accounts_by_shard() == {"shard_3": [accounts[2].pk]}
    assert list(Event.objects.order_by("id")) == [events[2], events[5]]


# The reverse accessors -----------------------------------------------------------


def test_the_events_of_an_account_are_read_in_default(spread):
    _, events = spread
    account = Account.objects.using("shard_2").get()
    with assert_queries_per_db(queries(default=1)):
        assert list(account.events.order_by("id")) == [events[1], events[4]]
    created = account.events.create(kind="new")
    assert created._state.db == "default"
    assert account.events.count() == 3


def test_the_notes_of_an_account_are_read_in_every_shard():
    account = account_in("shard_0")
    for alias in ("shard_1", "shard_2"):
        with partition(alias):
            NoteFactory(account=account)
    with assert_queries_per_db(queries(shard_0=1, shard_1=1, shard_2=1, shard_3=1)):
        assert [note._state.db for note in account.notes.all()] == [
            "shard_1",
            "shard_2",
        ]


def test_the_reverse_prefetch_of_one_shards_accounts_reads_default_once(spread):
    accounts, events = spread
    with assert_queries_per_db(queries(shard_3=1, default=1)):
        (account,) = Account.objects.using("shard_3").prefetch_cross("events")
        assert list(account.events.all()) == [events[2], events[5]]
    assert account == accounts[2]
