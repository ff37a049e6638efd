"""The shard shape: rows spread over ``shard_0`` ... ``shard_3`` by a
resolver, and the rows that refer to them, in "default" or in every shard.

One target per built-in resolver: accounts by a hash of their UUID,
mailboxes by a directory in "default", documents anywhere (scattered), and
folders that sit in the shard of the sheets referring to them.
"""

import uuid

from django.conf import settings
from django.db import models

from crossfk import CrossDBForeignKey, MultiDBManager
from crossfk.resolvers import Directory, Hash, SameAsSource, Scatter

SHARDS = [alias for alias in settings.DATABASES if alias.startswith("shard_")]


class Account(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)

    objects = MultiDBManager(Hash(SHARDS))

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    account = CrossDBForeignKey(
        Account, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=20)

    objects = MultiDBManager("default")


class Hold(models.Model):
    """A row in "default" that keeps its account from being deleted."""

    account = CrossDBForeignKey(Account, on_delete=models.PROTECT, related_name="holds")

    objects = MultiDBManager("default")


class Note(models.Model):
    """A row in any shard, referring to an account in any shard."""

    account = CrossDBForeignKey(
        Account,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notes",
    )
    text = models.CharField(max_length=100)

    objects = MultiDBManager(SHARDS)


class MailboxHome(models.Model):
    """The directory: which shard holds each mailbox."""

    address = models.CharField(max_length=100, unique=True)
    alias = models.CharField(max_length=20)

    objects = MultiDBManager("default")


class Mailbox(models.Model):
    address = models.CharField(primary_key=True, max_length=100)

    objects = MultiDBManager(
        Directory(MailboxHome, SHARDS, key="address", alias="alias")
    )


class Message(models.Model):
    mailbox = CrossDBForeignKey(
        Mailbox, on_delete=models.CASCADE, related_name="messages"
    )

    objects = MultiDBManager("default")


class Document(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=100)

    objects = MultiDBManager(Scatter(SHARDS))


class Citation(models.Model):
    document = CrossDBForeignKey(
        Document, on_delete=models.CASCADE, related_name="citations"
    )

    objects = MultiDBManager("default")


class Folder(models.Model):
    """Local to each shard: ids repeat from one shard to the next."""

    name = models.CharField(max_length=100)

    objects = MultiDBManager(SameAsSource())  # where the sheets are


class Sheet(models.Model):
    folder = CrossDBForeignKey(Folder, on_delete=models.CASCADE, related_name="sheets")
    title = models.CharField(max_length=100)

    objects = MultiDBManager(SHARDS)
