"""The built-in resolvers and the check of what a resolver answers, as pure
logic: no database is read."""

import uuid

import pytest
from django.conf import settings

from crossfk import PartitionError, Resolver
from crossfk.placement import model_aliases
from crossfk.resolvers import Directory, Hash, SameAsSource, Scatter, placed_ids
from tests.shards.models import Folder, Sheet
from tests.testapp.models import Post

SHARDS = ["shard_0", "shard_1", "shard_2", "shard_3"]
KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")


class Fixed(Resolver):
    """A resolver that answers what it was given, right or wrong."""

    def __init__(self, aliases, answer):
        super().__init__(aliases)
        self.answer = answer

    def aliases_for(self, ids):
        return self.answer


# Hash ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alias"),
    [
        (1, "shard_2"),
        (2, "shard_0"),
        (3, "shard_1"),
        ("alice", "shard_1"),
        ("bob", "shard_2"),
        (KEY, "shard_1"),
        (uuid.UUID(int=0), "shard_2"),
    ],
)
def test_hash_places_a_key_by_the_blake2b_digest_of_its_string(key, alias):
    # Fixed values: the same in every process and on every Python version.
    assert Hash(SHARDS).alias_of(key) == alias


def test_hash_groups_a_batch_by_alias_once_each_in_the_order_given():
    assert Hash(SHARDS).aliases_for([3, 1, 2, 4, 1, "alice"]) == {
        "shard_1": [3, "alice"],
        "shard_2": [1, 4],
        "shard_0": [2],
    }


def test_hash_spreads_keys_over_every_alias():
    placed = Hash(SHARDS).aliases_for(uuid.UUID(int=n) for n in range(400))
    assert sorted(placed) == SHARDS
    assert all(60 < len(ids) < 140 for ids in placed.values())


@pytest.mark.parametrize("key", [True, 1.5, None, b"raw"])
def test_hash_refuses_keys_it_has_no_canonical_string_for(key):
    with pytest.raises(TypeError, match=r"hashes integer, string and UUID keys"):
        Hash(SHARDS).alias_of(key)


def test_hash_places_a_new_row_by_its_primary_key():
    post = Post(pk=3)
    assert Hash(SHARDS).alias_for_new(post) == "shard_1"


def test_hash_refuses_a_new_row_without_a_primary_key():
    with pytest.raises(PartitionError) as raised:
        Hash(SHARDS).alias_for_new(Post())
    assert str(raised.value) == (
        "Hash(['shard_0', 'shard_1', 'shard_2', 'shard_3']) places a new "
        "testapp.Post by its primary key, which is not set: give "
        "testapp.Post.id a default (uuid.uuid4) or set it before save()."
    )


def test_a_resolver_takes_a_list_of_aliases_not_one():
    with pytest.raises(TypeError, match=r"MultiDBManager\('shard_0'\)"):
        Hash("shard_0")
    with pytest.raises(ValueError, match="at least one alias"):
        Scatter([])


# Scatter and SameAsSource ------------------------------------------------------


def test_scatter_asks_every_alias_for_every_id_and_places_no_new_row():
    scatter = Scatter(SHARDS[:2])
    assert scatter.aliases_for([7, 8, 7]) == {"shard_0": [7, 8], "shard_1": [7, 8]}
    assert scatter.aliases_for([]) == {}
    assert scatter.alias_for_new(Post(pk=1)) is None


def test_same_as_source_places_each_id_in_its_referencing_rows_alias():
    resolver = SameAsSource(SHARDS)
    assert resolver.is_local
    assert resolver.aliases_for_references({"shard_1": [1, 2, 1], "shard_3": [1]}) == {
        "shard_1": [1, 2],
        "shard_3": [1],
    }
    assert resolver.alias_for_new(Post()) is None


def test_same_as_source_refuses_ids_without_their_referencing_alias():
    with pytest.raises(PartitionError, match="was given ids alone"):
        SameAsSource(SHARDS).aliases_for([1])
    with pytest.raises(PartitionError, match="was given ids alone"):
        SameAsSource(SHARDS).aliases_for_references({None: [1]})


def test_by_default_a_resolver_is_asked_once_for_every_referencing_alias():
    resolver = Hash(SHARDS)
    assert resolver.aliases_for_references({"a": [1, 2], "b": [2, 3]}) == {
        "shard_2": [1],
        "shard_0": [2],
        "shard_1": [3],
    }


# What a resolver answers, checked --------------------------------------------


def test_placed_ids_gives_the_resolvers_answer_and_asks_nothing_for_no_ids():
    assert placed_ids(Hash(SHARDS), Post, {None: [1, 2]}) == {
        "shard_2": [1],
        "shard_0": [2],
    }
    assert placed_ids(Fixed(SHARDS, "never read"), Post, {None: []}) == {}


def test_an_alias_outside_the_resolvers_own_is_refused_naming_it():
    resolver = Fixed(SHARDS[:2], {"shard_0": [1], "shard_3": [2]})
    with pytest.raises(PartitionError) as raised:
        placed_ids(resolver, Post, {None: [1, 2]})
    assert str(raised.value) == (
        "Fixed(['shard_0', 'shard_1']) placed testapp.Post 2 in 'shard_3', "
        "which is not one of its aliases."
    )


def test_an_alias_missing_from_databases_is_named_as_such():
    resolver = Fixed(SHARDS, {"shard_9": [1]})
    with pytest.raises(PartitionError, match="'shard_9', which is not one of its "):
        placed_ids(resolver, Post, {None: [1]})
    with pytest.raises(PartitionError, match="nor a key of DATABASES"):
        placed_ids(resolver, Post, {None: [1]})


def test_an_id_the_resolver_leaves_out_is_refused_naming_it():
    resolver = Fixed(SHARDS, {"shard_0": [1]})
    with pytest.raises(PartitionError) as raised:
        placed_ids(resolver, Post, {None: [1, 2, 3]})
    assert str(raised.value) == (
        "Fixed(['shard_0', 'shard_1', 'shard_2', 'shard_3']) placed no alias "
        "for testapp.Post 2, 3."
    )


def test_same_as_source_outside_its_aliases_is_refused():
    with pytest.raises(PartitionError, match=r"placed testapp.Post 5 in 'default'"):
        placed_ids(SameAsSource(SHARDS), Post, {"default": [5]})


def test_resolvers_made_without_aliases_take_their_defaults():
    with pytest.raises(TypeError):
        Hash()  # type: ignore[call-arg]
    assert Scatter().aliases == tuple(settings.DATABASES)
    assert Directory("shards.MailboxHome").aliases == tuple(settings.DATABASES)
    unbound = SameAsSource()
    assert unbound.aliases == ()  # No model placed by it yet.


def test_same_as_source_without_aliases_lives_where_the_referring_rows_do():
    # Folder is SameAsSource(); only Sheet, placed in the shards, refers to it.
    assert model_aliases(Folder) == tuple(SHARDS)
    assert model_aliases(Sheet) == tuple(SHARDS)
