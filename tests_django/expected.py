"""Django's tests that fail with relations across databases, and why.

Every entry is a test that cannot pass for a reason that is not a crossfk
bug; run.py fails when a test outside this list fails, and when a listed one
passes. Test ids are ``app.module.Class.method``.
"""

import django

# assertNumQueries() and CaptureQueriesContext(connection) count the queries
# of "default" only: the reads and writes of the other side now go to
# "other", the existence check of a save reads the target's database, and a
# delete over both databases is one crossfk.atomic block (a SAVEPOINT and a
# RELEASE on "default" inside the test's transaction).
# The counts may still match by chance on one backend (PostgreSQL adds the
# SELECT ... FOR UPDATE of a delete's targets, SQLite sends ids in one
# statement where Django batches them), so these may also pass.
COUNTS_ONE_DATABASE = "assertNumQueries counts one database of two"

# A filter across a reverse relation returns each row once; a JOIN repeats
# it for every related row that matches (README, Guarantees and limits).
ONCE_PER_ROW = "a reverse filter returns each row once, not once per match"

# The test reads the SQL of a JOIN (INNER JOIN count, extra(where=...) naming
# the joined table, the WHERE clause of the prefetch's second query).
READS_JOIN_SQL = "asserts the SQL text of a JOIN that crossfk sends to two servers"

# Annotations and aggregates across databases raise FieldError with a hint:
# no database can count rows of another.
AGGREGATE_ACROSS = "Count() across databases raises FieldError"

# The test writes every model into the "other" alias with using(); the
# router keeps each table in its own database only.
WRITES_BOTH_TO_OTHER = "writes both ends into 'other', which has one end's table"

# select_related() across databases raises FieldError with a hint; crossfk
# issue 10 answers it like a prefetch, and then these pass.

EXPECTED_FAILURES = {
    "many_to_one.tests.ManyToOneTests.test_reverse_selects": ONCE_PER_ROW,
    "many_to_one.tests.ManyToOneTests"
    ".test_fetch_mode_fetch_peers_reverse_with_deferred_fk": COUNTS_ONE_DATABASE,
    "many_to_one_null.tests.ManyToOneNullTests.test_add_efficiency": (
        COUNTS_ONE_DATABASE
    ),
    "many_to_one_null.tests.ManyToOneNullTests.test_clear_efficiency": (
        COUNTS_ONE_DATABASE
    ),
    "many_to_one_null.tests.ManyToOneNullTests.test_set_clear_non_bulk": (
        COUNTS_ONE_DATABASE
    ),
    "delete.tests.DeletionTests.test_bulk": COUNTS_ONE_DATABASE,
    "delete.tests.DeletionTests.test_can_defer_constraint_checks": (
        COUNTS_ONE_DATABASE
    ),
    "delete.tests.DeletionTests.test_large_delete": COUNTS_ONE_DATABASE,
    "delete.tests.DeletionTests.test_large_delete_related": COUNTS_ONE_DATABASE,
    "delete.tests.DeletionTests.test_only_referenced_fields_selected": (
        COUNTS_ONE_DATABASE
    ),
    "delete.tests.DeletionTests.test_proxied_model_duplicate_queries": (
        COUNTS_ONE_DATABASE
    ),
    "delete.tests.FastDeleteTests.test_fast_delete_aggregation": AGGREGATE_ACROSS,
    "delete.tests.FastDeleteTests.test_fast_delete_all": COUNTS_ONE_DATABASE,
    "delete.tests.FastDeleteTests.test_fast_delete_combined_relationships": (
        COUNTS_ONE_DATABASE
    ),
    "delete.tests.FastDeleteTests.test_fast_delete_fk": COUNTS_ONE_DATABASE,
    "delete.tests.FastDeleteTests.test_fast_delete_full_match": COUNTS_ONE_DATABASE,
    "delete.tests.FastDeleteTests.test_fast_delete_large_batch": COUNTS_ONE_DATABASE,
    "delete.tests.FastDeleteTests.test_fast_delete_qs": COUNTS_ONE_DATABASE,
    "prefetch_related.tests.DirectPrefetchedObjectCacheReuseTests"
    ".test_detect_is_fetched": COUNTS_ONE_DATABASE,
    "prefetch_related.tests.DirectPrefetchedObjectCacheReuseTests"
    ".test_detect_is_fetched_with_to_attr": COUNTS_ONE_DATABASE,
    "prefetch_related.tests.DirectPrefetchedObjectCacheReuseTests"
    ".test_prefetch_reverse_foreign_key": COUNTS_ONE_DATABASE,
    "prefetch_related.tests.ForeignKeyToFieldTest.test_foreignkey": (
        COUNTS_ONE_DATABASE
    ),
    "prefetch_related.tests.MultiTableInheritanceTest.test_foreignkey": (
        COUNTS_ONE_DATABASE
    ),
    "prefetch_related.tests.MultiTableInheritanceTest.test_foreignkey_to_inherited": (
        COUNTS_ONE_DATABASE
    ),
    "prefetch_related.tests.PrefetchRelatedTests.test_m2m_then_reverse_fk_object_ids": (
        READS_JOIN_SQL
    ),
    "prefetch_related.tests.MultiDbTests.test_using_is_honored_custom_qs": (
        WRITES_BOTH_TO_OTHER
    ),
    "prefetch_related.tests.MultiDbTests.test_using_is_honored_fkey": (
        WRITES_BOTH_TO_OTHER
    ),
    "prefetch_related.tests.MultiDbTests.test_using_is_honored_inheritance": (
        WRITES_BOTH_TO_OTHER
    ),
    "prefetch_related.tests.MultiDbTests.test_using_is_honored_m2m": (
        WRITES_BOTH_TO_OTHER
    ),
    "prefetch_related.tests.MultiDbTests"
    ".test_forward_fk_prefetch_custom_queryset_uses_parent_database": (
        WRITES_BOTH_TO_OTHER
    ),
    "prefetch_related.tests.MultiDbTests"
    ".test_reverse_o2o_prefetch_custom_queryset_uses_parent_database": (
        WRITES_BOTH_TO_OTHER
    ),
}

# Django 6.0 split test_selects.
if django.VERSION < (6, 0):
    EXPECTED_FAILURES["many_to_one.tests.ManyToOneTests.test_selects"] = READS_JOIN_SQL
else:
    EXPECTED_FAILURES |= {
        "many_to_one.tests.ManyToOneTests.test_joined_sql": READS_JOIN_SQL,
        "many_to_one.tests.ManyToOneTests.test_joined_extra": READS_JOIN_SQL,
    }
