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
    fs = FinalFilesystem(Node(DIR, -1, children={}))
    for index, entries in enumerate(layers):
        _apply_layer(fs, index, entries)
    return fs


def _apply_layer(fs: FinalFilesystem, index: int, entries: Sequence[FileEntry]) -> None:
    # Whiteouts first: they act on lower layers only, wherever they sit in the tar.
    for entry in entries:
        if entry.kind == OPAQUE:
            directory = fs.lookup(entry.path)
            if directory is not None and directory.children is not None:
                for name in list(directory.children):
                    child = directory.children.pop(name)
                    _record_removed(fs, _join(entry.path, name), child, index, "hidden_by_opaque")
    for entry in entries:
        if entry.kind == WHITEOUT:
            parent_path, _, name = entry.path.rpartition("/")
            parent = fs.lookup(parent_path)
            if parent is not None and parent.children is not None and name in parent.children:
                _record_removed(fs, entry.path, parent.children.pop(name), index, "deleted")
    for entry in entries:
        if entry.kind not in (OPAQUE, WHITEOUT) and entry.path:
            _add_entry(fs, index, entry)


def _add_entry(fs: FinalFilesystem, index: int, entry: FileEntry) -> None:
    parts = entry.path.split("/")
    directory = fs.root
    walked = ""
    for part in parts[:-1]:
        walked = _join(walked, part)
        assert directory.children is not None
        child = directory.children.get(part)
        if child is None or child.children is None:
            if child is not None:
                _record_removed(fs, walked, child, index, "replaced_by_dir")
            child = Node(DIR, index, children={})
            directory.children[part] = child
        directory = child
    assert directory.children is not None
    name = parts[-1]
    existing = directory.children.get(name)
    if existing is not None:
        if existing.children is not None and entry.kind == DIR:
            existing.mode = entry.mode  # directory over directory: contents merge
            return
        _record_removed(fs, entry.path, existing, index, "overwritten")
    directory.children[name] = Node(
        entry.kind,
        index,
        entry.size if entry.kind == FILE else 0,
        entry.mode,
        entry.sha256,
        {} if entry.kind == DIR else None,
    )


def _record_removed(fs: FinalFilesystem, path: str, node: Node, by: int, reason: str) -> None:
    stack = [(path, node)]
    while stack:
        current_path, current = stack.pop()
        if current.kind == FILE and current.size:  # empty files cost nothing
            fs.waste.append(Waste(current_path, current.size, current.layer, by, reason))
        for name, child in (current.children or {}).items():
            stack.append((_join(current_path, name), child))


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name
