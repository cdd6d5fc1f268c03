"""The customer's topic tree: load the prototype's file format, validate it, navigate it.

A taxonomy file is one root node; every node has a `name` and optional `description`,
`definition`, `keywords`, `examples` (comments about the node, shown to the model), `scope`
and `children`. Paths are tuples of names below the
root (`("Delivery", "Pace")`); they are written `Root>Delivery>Pace` on the wire, and
without the root (`Delivery>Pace`) as stems.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

PATH_SEPARATOR = ">"
MAX_DEPTH = 8
MAX_NODES = 5000
MAX_CHILDREN = 100
_TEXT_FIELDS = ("description", "definition", "scope")
_LIST_FIELDS = ("keywords", "examples")
_KNOWN_FIELDS = {"name", "children", *_LIST_FIELDS, *_TEXT_FIELDS}

NodePath = tuple[str, ...]
logger = logging.getLogger(__name__)


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; the message names the file and the node."""


@dataclass(frozen=True)
class Node:
    name: str
    description: str = ""
    definition: str = ""
    keywords: tuple[str, ...] = ()
    scope: str = ""
    examples: tuple[str, ...] = ()  # comments about this node, written or drawn from labelled data
    children: tuple["Node", ...] = ()

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def child(self, name: str) -> "Node | None":
        return next((c for c in self.children if c.name == name), None)


@dataclass(frozen=True)
class Taxonomy:
    """A validated topic tree, with lookups by path."""

    root: Node
    name: str = "topics"
    source: Path | None = None  # the file it was loaded from (requests may name it by `config_path`)
    warnings: tuple[str, ...] = ()  # what the loader tolerated (unknown fields), one line each
    _by_path: dict[NodePath, Node] = field(default_factory=dict, repr=False, compare=False)
    _file_order: dict[NodePath, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        def visit(path: NodePath, node: Node) -> None:
            self._file_order[path] = len(self._file_order)  # pre-order: parents first
            self._by_path[path] = node
            for child in node.children:
                visit(path + (child.name,), child)

        visit((), self.root)

    def node(self, path: NodePath) -> Node:
        """The node at `path` (names below the root); KeyError names the missing path."""
        try:
            return self._by_path[tuple(path)]
        except KeyError:
            raise KeyError(f"no node {format_path(self.root.name, path)!r} in taxonomy {self.name!r}") from None

    def __contains__(self, path: object) -> bool:
        return isinstance(path, tuple) and path in self._by_path

    def nodes(self) -> Iterator[tuple[NodePath, Node]]:
        """Every node below the root with its path, in file order, parents before children."""
        return ((p, n) for p, n in self._by_path.items() if p)

    def in_file_order(self, paths: set[NodePath]) -> list[NodePath]:
        """`paths` sorted as the file lists them: each parent right before its children."""
        return sorted(paths, key=self._file_order.__getitem__)

    def leaf_paths(self) -> list[NodePath]:
        return [p for p, n in self.nodes() if n.is_leaf]

    def is_complete_stem(self, path: NodePath) -> bool:
        """A complete stem is a path below the root that ends at a leaf."""
        return bool(path) and path in self and self.node(path).is_leaf

    @property
    def depth(self) -> int:
        return max(len(p) for p in self._by_path)


def format_path(prefix: str | None, path: NodePath) -> str:
    """`Root>A>B` with a prefix (the root's name or a project name); `A>B` without."""
    parts = ([prefix] if prefix else []) + list(path)
    return PATH_SEPARATOR.join(parts)


def parse_stem(stem: str) -> NodePath:
    return tuple(stem.split(PATH_SEPARATOR))


def load_taxonomy(path: str | Path, name: str | None = None) -> Taxonomy:
    """Read and validate a taxonomy file; every problem is a `TaxonomyError` naming the node."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(f"taxonomy file {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TaxonomyError(f"taxonomy file {path} is not valid UTF-8 JSON: {exc}") from None
    try:
        tree = taxonomy_from_dict(raw, name=name or path.stem, source=path.resolve())
    except TaxonomyError as exc:
        raise TaxonomyError(f"{path}: {exc}") from None
    for warning in tree.warnings:
        logger.warning("%s: %s", path, warning)
    return tree


def taxonomy_from_dict(raw: Any, name: str = "topics", source: Path | None = None) -> Taxonomy:
    """Build a validated `Taxonomy` from the parsed JSON of a topics file.

    Unknown fields are tolerated, as the prototype tolerated them: each becomes one line
    of `Taxonomy.warnings` naming the node, so a typo (`defintion`) is still visible."""
    counter: list[int] = [0]
    warnings: list[str] = []
    root = _parse_node(raw, parent_path="", depth=0, counter=counter, seen=set(), warnings=warnings)
    if not root.children:
        raise TaxonomyError(f"root node {root.name!r} has no children: there is nothing to classify into")
    return Taxonomy(root=root, name=name, source=source, warnings=tuple(warnings))


def _parse_node(
    raw: Any, parent_path: str, depth: int, counter: list[int], seen: set[int], warnings: list[str]
) -> Node:
    where = repr(parent_path) if parent_path else "the root"
    if not isinstance(raw, dict):
        raise TaxonomyError(f"node under {where} must be a JSON object, got {type(raw).__name__}")
    if id(raw) in seen:  # only reachable when a caller hands in a self-referencing dict
        raise TaxonomyError(f"node under {where} contains itself (a cycle)")
    seen.add(id(raw))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TaxonomyError(f"a node under {where} has a missing or empty 'name'")
    here = f"{parent_path}{PATH_SEPARATOR}{name}" if parent_path else name
    if PATH_SEPARATOR in name:
        raise TaxonomyError(f"node {here!r}: names may not contain {PATH_SEPARATOR!r}, the path separator")
    if depth > MAX_DEPTH:
        raise TaxonomyError(f"node {here!r} is deeper than {MAX_DEPTH} levels")
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise TaxonomyError(f"more than {MAX_NODES} nodes (stopped at {here!r})")
    unknown = sorted(set(raw) - _KNOWN_FIELDS)
    if unknown:
        warnings.append(f"node {here!r} has unknown field(s) {unknown}, ignored; known: {sorted(_KNOWN_FIELDS)}")
    texts = {}
    for key in _TEXT_FIELDS:
        value = raw.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise TaxonomyError(f"node {here!r}: {key!r} must be a string, got {type(value).__name__}")
        texts[key] = value.strip()
    lists = {}
    for key in _LIST_FIELDS:
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TaxonomyError(f"node {here!r}: {key!r} must be a list of strings")
        lists[key] = tuple(v.strip() for v in value if v.strip())
    children_raw = raw.get("children") or []
    if not isinstance(children_raw, list):
        raise TaxonomyError(f"node {here!r}: 'children' must be a list of nodes")
    if len(children_raw) > MAX_CHILDREN:
        raise TaxonomyError(f"node {here!r} has {len(children_raw)} children; at most {MAX_CHILDREN}")
    children = tuple(_parse_node(c, here, depth + 1, counter, seen, warnings) for c in children_raw)
    names = [c.name for c in children]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TaxonomyError(f"node {here!r} has duplicate child names {duplicates}")
    return Node(name=name, children=children, **lists, **texts)
