"""Apply an image's layers in order, as a container runtime would, and account for every
byte: what reaches the final filesystem and what a later layer overwrote or deleted.

Rules (OCI image spec, layer.md): `.wh.NAME` deletes NAME and everything under it from
lower layers; `.wh..wh..opq` hides every lower-layer entry of its directory; whiteouts never
affect entries of their own layer. A non-directory replaces whatever was at its path;
a directory over a directory merges.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from transship.slim.analyze.layer_scan import DIR, FILE, OPAQUE, WHITEOUT, FileEntry


@dataclass(slots=True)
class Node:
    kind: str
    layer: int  # index of the layer that put this entry here
    size: int = 0
    mode: int = 0
    sha256: bytes | None = None
    children: dict[str, Node] | None = None  # directories only
    owner: object | None = None  # the builder token that may still change it in place


@dataclass(slots=True)
class Waste:
    path: str
    size: int
    added_by: int
    removed_by: int
    reason: str  # see model.WasteReason


@dataclass
class FinalFilesystem:
    root: Node
    waste: list[Waste] = field(default_factory=list)

    def iter_files(self) -> Iterator[tuple[str, Node]]:
        """Every regular file that reaches the final filesystem, with its path."""
        stack: list[tuple[str, Node]] = [("", self.root)]
        while stack:
            prefix, node = stack.pop()
            for name, child in (node.children or {}).items():
                path = f"{prefix}/{name}" if prefix else name
                if child.kind == FILE:
                    yield path, child
                elif child.children is not None:
                    stack.append((path, child))

    def lookup(self, path: str) -> Node | None:
        node: Node | None = self.root
        for part in path.split("/") if path else ():
            if node is None or node.children is None:
                return None
            node = node.children.get(part)
        return node

    @property
    def final_bytes(self) -> int:
        return sum(node.size for _, node in self.iter_files())

    @property
    def wasted_bytes(self) -> int:
        return sum(w.size for w in self.waste)

    def biggest_dirs(self, limit: int) -> list[tuple[str, int, int]]:
        """(path, bytes under it, files under it) of the biggest directories."""
        totals: list[tuple[int, int, str]] = []
        self._dir_totals("", self.root, totals)
        biggest = heapq.nsmallest(limit, (t for t in totals if t[0]), key=lambda t: (-t[0], t[2]))
        return [(p, s, n) for s, n, p in biggest]

    def _dir_totals(
        self, path: str, node: Node, out: list[tuple[int, int, str]]
    ) -> tuple[int, int]:
        size = count = 0
        for name, child in (node.children or {}).items():
            if child.kind == FILE:
                size += child.size
                count += 1
            elif child.children is not None:
                sub_size, sub_count = self._dir_totals(
                    f"{path}/{name}" if path else name, child, out
                )
                size += sub_size
                count += sub_count
        if path:
            out.append((size, count, path))
        return size, count


def apply_layers(layers: Sequence[Sequence[FileEntry]]) -> FinalFilesystem:
    builder = FilesystemBuilder()
    for index, entries in enumerate(layers):
        builder.apply_layer(index, entries)
    return builder.snapshot()


class LayerStackCache:
    """Images that start with the same layers share the filesystem those layers make:
    each image is applied on top of the longest prefix already built, copy-on-write, so
    a base and a JRE under 30 services are applied once, not 30 times."""

    def __init__(self) -> None:
        self._prefixes: dict[tuple[str, ...], FinalFilesystem] = {}

    def build(self, keys: Sequence[str], layers: Sequence[Sequence[FileEntry]]) -> FinalFilesystem:
        start = 0
        for k in range(len(keys), 0, -1):
            if tuple(keys[:k]) in self._prefixes:
                start = k
                break
        base = self._prefixes.get(tuple(keys[:start])) if start else None
        builder = FilesystemBuilder(base)
        snapshot = builder.snapshot()
        for index in range(start, len(keys)):
            builder.apply_layer(index, layers[index])
            snapshot = builder.snapshot()
            self._prefixes[tuple(keys[: index + 1])] = snapshot
        return snapshot


class FilesystemBuilder:
    """Applies layers to a tree of nodes. Nodes made since the last `snapshot()` belong to
    the current owner token and are changed in place; older ones (shared with snapshots)
    are copied before the first change."""

    def __init__(self, base: FinalFilesystem | None = None):
        self._token = object()
        self.root = base.root if base else Node(DIR, -1, children={})
        self.waste: list[Waste] = list(base.waste) if base else []
        self._dir_cache: tuple[str, Node] | None = None

    def snapshot(self) -> FinalFilesystem:
        """The filesystem as it is now; later layers will not change it."""
        self._token = object()
        self._dir_cache = None
        return FinalFilesystem(self.root, list(self.waste))

    def _own(self, node: Node) -> Node:
        if node.owner is self._token:
            return node
        return Node(
            node.kind,
            node.layer,
            node.size,
            node.mode,
            node.sha256,
            dict(node.children) if node.children is not None else None,
            self._token,
        )

    def _owned_dir(self, path: str) -> Node | None:
        """The directory at `path`, made ours (with its ancestors); None if there is none."""
        self.root = directory = self._own(self.root)
        for part in path.split("/") if path else ():
            assert directory.children is not None
            child = directory.children.get(part)
            if child is None or child.children is None:
                return None
            owned = self._own(child)
            if owned is not child:
                directory.children[part] = owned
            directory = owned
        return directory

    def apply_layer(self, index: int, entries: Sequence[FileEntry]) -> None:
        # Whiteouts first: they act on lower layers only, wherever they sit in the tar.
        for entry in entries:
            if entry.kind == OPAQUE:
                directory = self._owned_dir(entry.path)
                if directory is not None and directory.children:
                    for name in list(directory.children):
                        child = directory.children.pop(name)
                        self._record_removed(
                            _join(entry.path, name), child, index, "hidden_by_opaque"
                        )
        for entry in entries:
            if entry.kind == WHITEOUT:
                parent_path, _, name = entry.path.rpartition("/")
                parent = self._owned_dir(parent_path)
                if parent is not None and parent.children is not None and name in parent.children:
                    self._record_removed(entry.path, parent.children.pop(name), index, "deleted")
        self._dir_cache = None
        for entry in entries:
            if entry.kind not in (OPAQUE, WHITEOUT) and entry.path:
                self._add_entry(index, entry)
        self._dir_cache = None

    def _parent_of(self, index: int, path: str) -> Node:
        """The directory that will hold `path`, created (or replacing a non-directory) as
        needed; entries of a tar mostly share their parent, so the last one is remembered."""
        parent_path = path.rpartition("/")[0]
        cached = self._dir_cache
        if cached is not None and cached[0] == parent_path:
            return cached[1]
        self.root = directory = self._own(self.root)
        walked = ""
        for part in parent_path.split("/") if parent_path else ():
            walked = _join(walked, part)
            assert directory.children is not None
            child = directory.children.get(part)
            if child is None or child.children is None:
                if child is not None:
                    self._record_removed(walked, child, index, "replaced_by_dir")
                child = Node(DIR, index, children={}, owner=self._token)
            else:
                child = self._own(child)
            directory.children[part] = child
            directory = child
        self._dir_cache = (parent_path, directory)
        return directory

    def _add_entry(self, index: int, entry: FileEntry) -> None:
        directory = self._parent_of(index, entry.path)
        assert directory.children is not None
        name = entry.path.rpartition("/")[2]
        existing = directory.children.get(name)
        if existing is not None:
            if existing.children is not None and entry.kind == DIR:
                # Directory over directory: contents merge, the new mode wins.
                owned = self._own(existing)
                owned.mode = entry.mode
                directory.children[name] = owned
                return
            self._record_removed(entry.path, existing, index, "overwritten")
            self._dir_cache = None  # a replaced directory may have held the cached one
        directory.children[name] = Node(
            entry.kind,
            index,
            entry.size if entry.kind == FILE else 0,
            entry.mode,
            entry.sha256,
            {} if entry.kind == DIR else None,
            self._token,
        )

    def _record_removed(self, path: str, node: Node, by: int, reason: str) -> None:
        stack = [(path, node)]
        while stack:
            current_path, current = stack.pop()
            if current.kind == FILE and current.size:  # empty files cost nothing
                self.waste.append(Waste(current_path, current.size, current.layer, by, reason))
            for name, child in (current.children or {}).items():
                stack.append((_join(current_path, name), child))


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name
