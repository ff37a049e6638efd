"""Move the relations of one of Django's test apps across two databases.

``convert(source)`` reads an app's ``models.py`` and returns it rewritten,
with the aliases its models are placed in:

- models that must share a database stay together: a multi-table child and
  its parent, a proxy and its model, both ends of a ManyToManyField (and its
  ``through`` model) or a OneToOneField, both ends of a ForeignKey whose
  action only a database can carry out (Django 6.1's ``DB_CASCADE``...), a
  model and a model it names in a GenericRelation, and every model with a
  relation outside the app (ContentType, say) in "default" beside it;
- the groups are then coloured "default" and "other" along their
  ForeignKeys, breadth first, so that as many ForeignKeys as possible join
  two databases; each ForeignKey between a "default" and an "other" model
  becomes a ``CrossDBForeignKey`` with the same arguments;
- managers and querysets are crossfk's (``MultiDBManager``, which only the
  router places, and ``CrossQuerySet``), so lookups across are split.
"""

from __future__ import annotations

import ast
from collections import defaultdict, deque

SAME_DATABASE_FIELDS = {"ManyToManyField", "OneToOneField", "GenericRelation"}
DEFAULT, OTHER = "default", "other"


def call_name(node: ast.AST) -> str | None:
    """``ForeignKey`` for ``models.ForeignKey(...)`` or ``ForeignKey(...)``."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def is_manager(node: ast.AST) -> bool:
    """Whether ``node`` makes a manager (``Manager()``, ``QuerySet.as_manager()``)."""
    name = call_name(node) or ""
    return name.endswith("Manager") or name == "as_manager"


def related_name(call: ast.Call, classes: set[str], owner: str) -> str | None:
    """The model a relation field names: a class of the app, "self", or None."""
    target = call.args[0] if call.args else None
    for keyword in call.keywords:
        if keyword.arg == "to":
            target = keyword.value
    if isinstance(target, ast.Name):
        return target.id if target.id in classes else None
    if isinstance(target, ast.Constant) and isinstance(target.value, str):
        name = target.value.rsplit(".", 1)[-1]
        if name == "self":
            return owner
        return name if name in classes else None
    return None


def in_database(call: ast.Call) -> bool:
    """Whether the relation's on_delete is one of the database's (``DB_...``)."""
    return any(
        isinstance(node, ast.Attribute) and node.attr.startswith("DB_")
        for node in ast.walk(call)
    )


class Placement:
    """Where each model of one ``models.py`` goes, and which relations cross."""

    def __init__(self, tree: ast.Module) -> None:
        self.classes = {
            node.name: node for node in tree.body if isinstance(node, ast.ClassDef)
        }
        self.parent = {name: name for name in self.classes}
        self.pinned: set[str] = set()  # models with a relation outside the app
        self.foreign_keys = []  # (owner, target, call)
        for name, node in self.classes.items():
            self.read_class(name, node)
        self.aliases = self.colour()

    def find(self, name: str) -> str:
        while self.parent[name] != name:
            name = self.parent[name]
        return name

    def join(self, first: str, second: str) -> None:
        self.parent[self.find(first)] = self.find(second)

    def read_class(self, name: str, node: ast.ClassDef) -> None:
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in self.classes:
                self.join(name, base.id)  # multi-table child or proxy
        for statement in ast.walk(node):
            kind = call_name(statement)
            if kind not in SAME_DATABASE_FIELDS | {"ForeignKey"}:
                continue
            target = related_name(statement, set(self.classes), name)
            if target is None:
                self.pinned.add(name)
            elif (
                kind in SAME_DATABASE_FIELDS or target == name or in_database(statement)
            ):
                self.join(name, target)
                for keyword in statement.keywords:
                    through = keyword.value
                    if keyword.arg == "through" and isinstance(through, ast.Constant):
                        self.join(name, through.value)
            else:
                self.foreign_keys.append((name, target, statement))

    def colour(self) -> dict[str, str]:
        """Groups coloured along ForeignKeys, pinned groups in "default"."""
        neighbours = defaultdict(set)
        for owner, target, _ in self.foreign_keys:
            neighbours[self.find(owner)].add(self.find(target))
            neighbours[self.find(target)].add(self.find(owner))
        groups = dict.fromkeys(self.find(name) for name in self.classes)
        pinned = {self.find(name) for name in self.pinned}
        colours = {}
        for start in sorted(groups, key=lambda group: group not in pinned):
            if start in colours:
                continue
            colours[start] = DEFAULT
            queue = deque([start])
            while queue:
                group = queue.popleft()
                for neighbour in sorted(neighbours[group]):
                    if neighbour not in colours:
                        is_free = neighbour not in pinned
                        flipped = OTHER if colours[group] == DEFAULT else DEFAULT
                        colours[neighbour] = flipped if is_free else DEFAULT
                        queue.append(neighbour)
        return {name: colours[self.find(name)] for name in self.classes}

    def crosses(self, owner: str, target: str) -> bool:
        return self.aliases[owner] != self.aliases[target]


class CrossTransformer(ast.NodeTransformer):
    """Rewrite ForeignKeys that cross, managers and querysets."""

    def __init__(self, placement: Placement) -> None:
        self.placement = placement
        self.crossing = {
            id(call)
            for owner, target, call in placement.foreign_keys
            if placement.crosses(owner, target)
        }

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if id(node) in self.crossing:
            node.func = ast.Name("CrossDBForeignKey", ast.Load())
            node.keywords = [k for k in node.keywords if k.arg != "db_constraint"]
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        is_models = isinstance(node.value, ast.Name) and node.value.id == "models"
        if is_models and node.attr == "Manager":
            return ast.Name("MultiDBManager", ast.Load())
        if is_models and node.attr == "QuerySet":
            return ast.Name("CrossQuerySet", ast.Load())
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.generic_visit(node)
        is_model = node.name in self.placement.classes and any(
            isinstance(base, ast.Attribute) and base.attr == "Model"
            for base in node.bases
        )
        has_manager = any(
            isinstance(statement, ast.Assign) and is_manager(statement.value)
            for statement in node.body
        )
        if is_model and not has_manager:
            manager = ast.parse("objects = MultiDBManager()").body[0]
            node.body.insert(0, manager)
        return node


def is_preamble(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.ImportFrom):
        return statement.module == "__future__"
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


def convert(source: str) -> tuple[str, dict[str, str], int]:
    """The rewritten module, each model's alias, and how many relations cross."""
    tree = ast.parse(source)
    placement = Placement(tree)
    transformer = CrossTransformer(placement)
    tree = transformer.visit(tree)
    imports = ast.parse(
        "from crossfk import CrossDBForeignKey, CrossQuerySet, MultiDBManager"
    ).body
    # After the docstring and any __future__ import, which must come first.
    after_future = 0
    while after_future < len(tree.body) and is_preamble(tree.body[after_future]):
        after_future += 1
    tree.body[after_future:after_future] = imports
    tree = ast.fix_missing_locations(tree)
    return ast.unparse(tree), placement.aliases, len(transformer.crossing)
