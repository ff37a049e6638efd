"""Relations to targets the other built-in resolvers place, end to end:
mailboxes by a directory in "default" (``Directory``), documents in any
shard (``Scatter``), folders in the shard of their sheets (``SameAsSource``,
ids repeating from one shard to the next)."""

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db.models import prefetch_related_objects

from crossfk import CrossDBIntegrityError, PartitionError, fan_out, partition
from crossfk.testing import assert_queries_per_db
from tests.factories import (
    CitationFactory,
    DocumentFactory,
    FolderFactory,
    MailboxFactory,
    MailboxHomeFactory,
    MessageFactory,
    SheetFactory,
)
from tests.shards.models import (
    SHARDS,
    Citation,
    Document,
    Folder,
    Mailbox,
    Message,
    Sheet,
)

pytestmark = pytest.mark.django_db(databases=["default", *SHARDS])

DIRECTORY = (
    "Directory('shards.MailboxHome', ['shard_0', 'shard_1', 'shard_2', 'shard_3'])"
)


def queries(**counts):
    """Expected query counts: those given, none on the other shards."""
    return dict.fromkeys(SHARDS, 0) | counts


# Directory -----------------------------------------------------------------------


def test_a_new_mailbox_goes_to_the_shard_its_directory_row_names():
    home = MailboxHomeFactory(alias="shard_3")
    with assert_queries_per_db(queries(default=1, shard_3=1)):
        mailbox = Mailbox.objects.create(address=home.address)
    assert mailbox._state.db == "shard_3"
    assert Mailbox.objects.using("shard_3").get() == mailbox


def test_a_message_reads_its_mailbox_where_the_directory_says():
    MessageFactory(mailbox__home__alias="shard_2")
    message = Message.objects.get()
    with assert_queries_per_db(queries(default=1, shard_2=1)):
        assert message.mailbox._state.db == "shard_2"


def test_prefetching_mailboxes_reads_the_directory_once_per_batch():
    mailboxes = [
        MailboxFactory(home__alias=alias) for alias in ("shard_1", "shard_3", "shard_1")
    ]
    for mailbox in mailboxes:
        MessageFactory.create_batch(2, mailbox=mailbox)
    with assert_queries_per_db(queries(default=2, shard_1=1, shard_3=1)):
        messages = list(Message.objects.order_by("id").prefetch_cross("mailbox"))
        assert [m.mailbox.address for m in messages] == [
            mailbox.address for mailbox in mailboxes for _ in range(2)
        ]


def test_an_address_missing_from_the_directory_is_refused_before_any_write():
    with pytest.raises(PartitionError) as raised:
        Message.objects.create(mailbox_id="nobody@example.com")
    assert str(raised.value) == (
        f"Message.mailbox: {DIRECTORY} has no row for address "
        f"'nobody@example.com': add one (address, alias) to shards.MailboxHome "
        f"before such a row is saved or referred to."
    )
    assert not Message.objects.exists()


def test_a_directory_row_naming_an_alias_outside_the_resolvers_is_refused():
    home = MailboxHomeFactory(alias="secondary")
    with pytest.raises(PartitionError) as raised:
        Message.objects.create(mailbox_id=home.address)
    assert str(raised.value) == (
        f"Message.mailbox: {DIRECTORY} placed shards.Mailbox {home.address!r} "
        f"in 'secondary', which is not one of its aliases."
    )
    assert not Message.objects.exists()


def test_a_new_mailbox_without_a_directory_row_is_refused():
    with pytest.raises(PartitionError, match=r"has no row for address 'new@x\.org'"):
        Mailbox.objects.create(address="new@x.org")
    assert not any(Mailbox.objects.using(alias).exists() for alias in SHARDS)


# Scatter -----------------------------------------------------------------------


def test_a_new_document_needs_a_partition_to_name_its_shard():
    with pytest.raises(PartitionError, match=r"shards\.Document lives in 4 databases"):
        DocumentFactory()
    with partition("shard_1"):
        document = DocumentFactory()
    assert document._state.db == "shard_1"


def test_a_citation_asks_every_shard_for_its_document():
    with partition("shard_2"):
        document = DocumentFactory()
    with assert_queries_per_db(queries(shard_0=1, shard_1=1, shard_2=1, shard_3=1)):
        CitationFactory(document=document)
    citation = Citation.objects.get()
    with assert_queries_per_db(queries(shard_0=1, shard_1=1, shard_2=1, shard_3=1)):
        assert citation.document == document
    assert citation.document._state.db == "shard_2"


def test_prefetching_documents_asks_each_shard_once():
    documents = []
    for alias in ("shard_0", "shard_3"):
        with partition(alias):
            documents.append(DocumentFactory())
    for document in documents * 2:
        CitationFactory(document=document)
    with assert_queries_per_db(
        queries(default=1, shard_0=1, shard_1=1, shard_2=1, shard_3=1)
    ):
        citations = list(Citation.objects.order_by("id").prefetch_cross("document"))
        assert [c.document for c in citations] == documents * 2


def test_a_document_found_in_two_shards_is_an_error():
    with partition("shard_0"):
        document = DocumentFactory()
    Document.objects.using("shard_3").create(id=document.pk, title="Copy")
    CitationFactory(document=document)
    citation = Citation.objects.get()
    with pytest.raises(Document.MultipleObjectsReturned) as raised:
        citation.document  # noqa: B018
    assert str(raised.value) == (
        f"Citation.document: Document with id {document.pk!r} exists in "
        f"'shard_0', 'shard_3'; Scatter(['shard_0', 'shard_1', 'shard_2', "
        f"'shard_3']) needs ids unique across its databases."
    )


def test_a_citation_of_a_missing_document_names_every_shard_asked():
    missing = DocumentFactory.build().pk
    with pytest.raises(CrossDBIntegrityError) as raised:
        Citation.objects.create(document_id=missing)
    assert str(raised.value).startswith(
        f"Citation.document: no Document with id {missing!r} in databases "
        f"'shard_0', 'shard_1', 'shard_2', 'shard_3'. "
    )


# SameAsSource: ids repeat from one shard to the next ------------------------


@pytest.fixture
def twins():
    """A folder with the same id in shard_0 and shard_1, two sheets each."""
    folders, sheets = {}, {}
    for alias in ("shard_0", "shard_1"):
        with partition(alias):
            # Each shard's own sequence; the same id, whatever ran before.
            same_id = {"id": folders["shard_0"].pk} if folders else {}
            folders[alias] = FolderFactory(name=f"Folder of {alias}", **same_id)
            sheets[alias] = SheetFactory.create_batch(2, folder=folders[alias])
    return folders, sheets


@pytest.mark.usefixtures("twins")
def test_a_sheet_reads_its_folder_from_its_own_shard():
    sheet = Sheet.objects.using("shard_1").first()
    with assert_queries_per_db(queries(shard_1=1)):
        assert sheet.folder.name == "Folder of shard_1"


@pytest.mark.usefixtures("twins")
def test_sheets_from_two_shards_prefetch_the_folder_of_their_own():
    # Every shard's sheets, then the folders of the two that hold some.
    with assert_queries_per_db(queries(shard_0=2, shard_1=2, shard_2=1, shard_3=1)):
        sheets = list(fan_out(Sheet.objects.prefetch_cross("folder")))
        assert [(s._state.db, s.folder.name) for s in sheets] == [
            ("shard_0", "Folder of shard_0"),
            ("shard_0", "Folder of shard_0"),
            ("shard_1", "Folder of shard_1"),
            ("shard_1", "Folder of shard_1"),
        ]


def test_the_sheets_of_a_folder_are_those_of_its_shard(twins):
    _, sheets = twins
    folder = Folder.objects.using("shard_1").get()
    with assert_queries_per_db(queries(shard_1=1)):
        assert list(folder.sheets.all()) == sheets["shard_1"]


def test_the_reverse_prefetch_matches_sheets_by_shard_and_id(twins):
    _, sheets = twins
    folders = [Folder.objects.using(alias).get() for alias in ("shard_0", "shard_1")]
    with assert_queries_per_db(queries(shard_0=1, shard_1=1)):
        prefetch_related_objects(folders, "sheets")
        assert [list(f.sheets.all()) for f in folders] == [
            sheets["shard_0"],
            sheets["shard_1"],
        ]
    with assert_queries_per_db(queries(shard_1=2)):
        (folder,) = Folder.objects.using("shard_1").prefetch_cross("sheets")
        assert list(folder.sheets.all()) == sheets["shard_1"]


def test_a_filter_across_reads_the_folders_of_the_partition_in_effect(twins):
    _, sheets = twins
    with partition("shard_1"), assert_queries_per_db(queries(shard_1=2)):
        assert (
            list(Sheet.objects.filter(folder__name__endswith="1"))
            == (sheets["shard_1"])
        )


def test_a_filter_across_reads_the_folders_of_the_shard_it_runs_in(twins):
    _, sheets = twins
    with assert_queries_per_db(queries(shard_1=2)):
        found = list(Sheet.objects.using("shard_1").filter(folder__name__endswith="1"))
    assert found == sheets["shard_1"]
    # Where no folder matches, the sheets are not asked for.
    with assert_queries_per_db(queries(shard_0=1, shard_1=2, shard_2=1, shard_3=1)):
        found = list(fan_out(Sheet.objects.filter(folder__name__endswith="1")))
    assert [(sheet._state.db, sheet.pk) for sheet in found] == [
        ("shard_1", sheet.pk) for sheet in sheets["shard_1"]
    ]


def test_a_reverse_filter_matches_each_shards_folders_by_that_shards_sheets(twins):
    folders, _ = twins
    second_id = folders["shard_0"].pk + 1  # free in both shards
    Folder.objects.using("shard_0").create(id=second_id, name="Bare")
    second = Folder.objects.using("shard_1").create(id=second_id, name="Second")
    Sheet.objects.using("shard_1").create(folder=second, title="Only one")
    found = fan_out(Folder.objects.filter(sheets__title="Only one"))
    assert [(folder._state.db, folder.name) for folder in found] == [
        ("shard_1", "Second")
    ]
    with partition("shard_0"):
        assert not Folder.objects.filter(sheets__title="Only one").exists()


def test_values_across_read_each_sheets_folder_in_its_own_shard(twins):
    _, sheets = twins
    with assert_queries_per_db(queries(shard_1=2)):
        rows = list(Sheet.objects.using("shard_1").values_list("title", "folder__name"))
    assert rows == [(sheet.title, "Folder of shard_1") for sheet in sheets["shard_1"]]
    # The shards without sheets are not asked for folders.
    with assert_queries_per_db(queries(shard_0=2, shard_1=2, shard_2=1, shard_3=1)):
        rows = list(fan_out(Sheet.objects.values("title", "folder__name")))
    assert rows == [
        {"title": sheet.title, "folder__name": f"Folder of {alias}"}
        for alias in ("shard_0", "shard_1")
        for sheet in sheets[alias]
    ]


def test_values_across_from_folders_read_the_sheets_of_their_own_shard(twins):
    _, sheets = twins
    with partition("shard_0"):
        rows = list(Folder.objects.values_list("name", "sheets__title"))
    assert sorted(rows) == sorted(
        ("Folder of shard_0", sheet.title) for sheet in sheets["shard_0"]
    )


def test_crossfk_check_looks_for_each_sheets_folder_in_its_own_shard(twins):
    folders, _ = twins
    Folder.objects.using("shard_1").filter(pk=folders["shard_1"].pk)._raw_delete(
        "shard_1"
    )
    stdout = StringIO()
    with pytest.raises(CommandError, match="2 dangling"):
        call_command("crossfk_check", "shards.Sheet", stdout=stdout)
    sheet = "shards.Sheet.folder in '{}' -> shards.Folder ({})"
    every_shard = ", ".join(SHARDS)
    assert stdout.getvalue().splitlines() == [
        sheet.format(alias, every_shard) + f": {int(alias == 'shard_1') * 2} dangling"
        for alias in SHARDS
    ]


def test_deleting_a_folder_cascades_to_the_sheets_of_its_shard_only(twins):
    _, sheets = twins
    deleted = Folder.objects.using("shard_0").get().delete()
    assert deleted == (3, {"shards.Folder": 1, "shards.Sheet": 2})
    assert not Sheet.objects.using("shard_0").exists()
    assert list(Sheet.objects.using("shard_1").all()) == sheets["shard_1"]


@pytest.mark.usefixtures("twins")
def test_a_sheet_for_a_folder_missing_from_its_shard_is_refused():
    with partition("shard_2"), pytest.raises(CrossDBIntegrityError) as raised:
        Sheet.objects.create(folder_id=1, title="Lost")
    assert str(raised.value).startswith(
        "Sheet.folder: no Folder with id 1 in database 'shard_2'. "
    )


def test_full_clean_of_a_sheet_looks_in_its_own_shard(twins):
    folders, _ = twins
    folder_id = folders["shard_1"].pk
    with partition("shard_1"):
        SheetFactory.build(folder_id=folder_id).full_clean(exclude=["title"])
    with partition("shard_3"), pytest.raises(ValidationError, match="'shard_3'"):
        SheetFactory.build(folder_id=folder_id).full_clean(exclude=["title"])
