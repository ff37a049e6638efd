"""The only way the tests make data: each factory writes to its model's database."""

import factory

from crossfk.factories import PartitionedModelFactory
from tests.shards import models as shards
from tests.tenants import models as tenants
from tests.testapp import models


class AuthorFactory(PartitionedModelFactory):
    name = factory.Sequence(lambda n: f"Author {n}")

    class Meta:
        model = models.Author


class PostFactory(PartitionedModelFactory):
    title = factory.Sequence(lambda n: f"Post {n}")
    slug = factory.Sequence(lambda n: f"post-{n}")
    author = factory.SubFactory(AuthorFactory)

    class Meta:
        model = models.Post


class LinkFactory(PartitionedModelFactory):
    url = factory.Sequence(lambda n: f"https://example.com/{n}")
    post = factory.SubFactory(PostFactory)

    class Meta:
        model = models.Link


class TagFactory(PartitionedModelFactory):
    name = factory.Sequence(lambda n: f"tag{n}")
    link = factory.SubFactory(LinkFactory)

    class Meta:
        model = models.Tag


class PostReferenceFactory(PartitionedModelFactory):
    """The models that hold nothing but their on_delete action's reference."""

    post = factory.SubFactory(PostFactory)

    class Meta:
        abstract = True


def factory_for(model, base=PartitionedModelFactory) -> type[PartitionedModelFactory]:
    """A factory of ``base`` for ``model``, with no declarations of its own."""
    meta = type("Meta", (), {"model": model})
    return type(f"{model.__name__}Factory", (base,), {"Meta": meta})


ProtectedLinkFactory = factory_for(models.ProtectedLink, PostReferenceFactory)
RestrictedLinkFactory = factory_for(models.RestrictedLink, PostReferenceFactory)
NullingLinkFactory = factory_for(models.NullingLink, PostReferenceFactory)
DefaultingLinkFactory = factory_for(models.DefaultingLink, PostReferenceFactory)
UnenforcedLinkFactory = factory_for(models.UnenforcedLink, PostReferenceFactory)


class BigTargetFactory(PartitionedModelFactory):
    class Meta:
        model = models.BigTarget


class UUIDTargetFactory(PartitionedModelFactory):
    class Meta:
        model = models.UUIDTarget


class CharTargetFactory(PartitionedModelFactory):
    code = factory.Sequence(lambda n: f"code-{n}")

    class Meta:
        model = models.CharTarget


class KeyedReferenceFactory(PartitionedModelFactory):
    big = factory.SubFactory(BigTargetFactory)
    uuid = factory.SubFactory(UUIDTargetFactory)
    char = factory.SubFactory(CharTargetFactory)

    class Meta:
        model = models.KeyedReference


class SlugTargetFactory(PartitionedModelFactory):
    name = factory.Sequence(lambda n: f"Slug target {n}")
    slug = factory.Sequence(lambda n: f"slug-{n}")

    class Meta:
        model = models.SlugTarget


class SlugLinkFactory(PartitionedModelFactory):
    target = factory.SubFactory(SlugTargetFactory)

    class Meta:
        model = models.SlugLink


def factories_for(family) -> dict[str, type[PartitionedModelFactory]]:
    """A factory per model of a twins family: ``{"Post": CrossPostFactory, ...}``."""
    return {name: factory_for(model) for name, model in vars(family).items()}


class CustomerFactory(PartitionedModelFactory):
    name = factory.Sequence(lambda n: f"Customer {n}")

    class Meta:
        model = tenants.Customer


class OrderFactory(PartitionedModelFactory):
    """Inside ``crossfk.partition(alias)``: the order goes to that tenant."""

    customer = factory.SubFactory(CustomerFactory)
    total = factory.Sequence(lambda n: n * 10)

    class Meta:
        model = tenants.Order


class OrderLineFactory(PartitionedModelFactory):
    order = factory.SubFactory(OrderFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n}")

    class Meta:
        model = tenants.OrderLine


class InvoiceFactory(PartitionedModelFactory):
    customer = factory.SubFactory(CustomerFactory)

    class Meta:
        model = tenants.Invoice


class AccountFactory(PartitionedModelFactory):
    """Each account goes to the shard the hash of its UUID names."""

    name = factory.Sequence(lambda n: f"Account {n}")

    class Meta:
        model = shards.Account


class EventFactory(PartitionedModelFactory):
    account = factory.SubFactory(AccountFactory)
    kind = factory.Sequence(lambda n: f"kind-{n}")

    class Meta:
        model = shards.Event


class HoldFactory(PartitionedModelFactory):
    account = factory.SubFactory(AccountFactory)

    class Meta:
        model = shards.Hold


class NoteFactory(PartitionedModelFactory):
    """Inside ``crossfk.partition(alias)``: the note goes to that shard."""

    account = factory.SubFactory(AccountFactory)
    text = factory.Sequence(lambda n: f"Note {n}")

    class Meta:
        model = shards.Note


class MailboxHomeFactory(PartitionedModelFactory):
    address = factory.Sequence(lambda n: f"box{n}@example.com")
    alias = "shard_0"

    class Meta:
        model = shards.MailboxHome


class MailboxFactory(PartitionedModelFactory):
    """Writes its directory row first, in the shard ``home__alias`` names."""

    home = factory.SubFactory(MailboxHomeFactory)
    address = factory.SelfAttribute("home.address")

    class Meta:
        model = shards.Mailbox
        exclude = ["home"]


class MessageFactory(PartitionedModelFactory):
    mailbox = factory.SubFactory(MailboxFactory)

    class Meta:
        model = shards.Message


class DocumentFactory(PartitionedModelFactory):
    """Inside ``crossfk.partition(alias)``: Scatter places no new row."""

    title = factory.Sequence(lambda n: f"Document {n}")

    class Meta:
        model = shards.Document


class CitationFactory(PartitionedModelFactory):
    document = factory.SubFactory(DocumentFactory)

    class Meta:
        model = shards.Citation


class FolderFactory(PartitionedModelFactory):
    """Inside ``crossfk.partition(alias)``: the folder goes to that shard."""

    name = factory.Sequence(lambda n: f"Folder {n}")

    class Meta:
        model = shards.Folder


class SheetFactory(PartitionedModelFactory):
    folder = factory.SubFactory(FolderFactory)
    title = factory.Sequence(lambda n: f"Sheet {n}")

    class Meta:
        model = shards.Sheet
