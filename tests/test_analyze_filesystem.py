"""Applying layers: whiteouts, opaque directories, replacements, and byte accounting."""

from __future__ import annotations

import hashlib

from transship.slim.analyze.filesystem import FinalFilesystem, apply_layers
from transship.slim.analyze.layer_scan import (
    DIR,
    FILE,
    HARDLINK,
    OPAQUE,
    SYMLINK,
    WHITEOUT,
    FileEntry,
)


def f(path: str, size: int, seed: str = "") -> FileEntry:
    return FileEntry(
        path, FILE, size, 0o644, None, hashlib.sha256(f"{seed or path}{size}".encode()).digest()
    )


def d(path: str) -> FileEntry:
    return FileEntry(path, DIR, 0, 0o755)


def files_of(fs: FinalFilesystem) -> dict[str, tuple[int, int]]:
    return {path: (node.size, node.layer) for path, node in fs.iter_files()}


def waste_of(fs: FinalFilesystem) -> set[tuple[str, int, int, int, str]]:
    return {(w.path, w.size, w.added_by, w.removed_by, w.reason) for w in fs.waste}


def shipped(layers: list[list[FileEntry]]) -> int:
    return sum(e.size for layer in layers for e in layer if e.kind == FILE)


def test_whiteout_deletes_a_subtree_of_lower_layers() -> None:
    layers = [
        [d("var"), d("var/lib"), f("var/lib/a", 10), f("var/lib/sub/b", 20), f("keep", 5)],
        [FileEntry("var/lib", WHITEOUT)],
    ]
    fs = apply_layers(layers)
    assert files_of(fs) == {"keep": (5, 0)}
    assert waste_of(fs) == {
        ("var/lib/a", 10, 0, 1, "deleted"),
        ("var/lib/sub/b", 20, 0, 1, "deleted"),
    }
    assert fs.final_bytes + fs.wasted_bytes == shipped(layers)


def test_whiteout_never_touches_its_own_layer() -> None:
    # The same layer both whites out and (re)creates a path: the new file stays.
    layers = [[f("etc/conf", 7)], [f("etc/conf", 9, "new"), FileEntry("etc/conf", WHITEOUT)]]
    fs = apply_layers(layers)
    assert files_of(fs) == {"etc/conf": (9, 1)}
    assert waste_of(fs) == {("etc/conf", 7, 0, 1, "deleted")}


def test_opaque_hides_lower_contents_only() -> None:
    layers = [
        [
            d("app"),
            f("app/old1", 3),
            f("app/old2", 4),
            d("app/deep"),
            f("app/deep/x", 5),
            f("other", 1),
        ],
        # The new file comes before the marker in the tar: order must not matter.
        [f("app/new", 6), FileEntry("app", OPAQUE)],
    ]
    fs = apply_layers(layers)
    assert files_of(fs) == {"app/new": (6, 1), "other": (1, 0)}
    assert {w[0] for w in waste_of(fs)} == {"app/old1", "app/old2", "app/deep/x"}
    assert all(w[4] == "hidden_by_opaque" and w[3] == 1 for w in waste_of(fs))
    assert fs.wasted_bytes == 12


def test_overwrite_and_same_layer_repeat() -> None:
    layers = [[f("bin/tool", 100)], [f("bin/tool", 120, "v2"), f("bin/tool", 130, "v3")]]
    fs = apply_layers(layers)
    assert files_of(fs) == {"bin/tool": (130, 1)}
    assert waste_of(fs) == {
        ("bin/tool", 100, 0, 1, "overwritten"),
        ("bin/tool", 120, 1, 1, "overwritten"),
    }
    assert fs.final_bytes + fs.wasted_bytes == shipped(layers)


def test_file_over_directory_and_directory_over_file() -> None:
    layers = [
        [d("opt"), d("opt/pkg"), f("opt/pkg/a", 11), f("opt/pkg/b", 12), f("srv", 13)],
        [f("opt/pkg", 14)],  # a file replaces the whole directory
        [f("srv/inside", 15)],  # a file where a directory is needed: it goes
    ]
    fs = apply_layers(layers)
    assert files_of(fs) == {"opt/pkg": (14, 1), "srv/inside": (15, 2)}
    assert waste_of(fs) == {
        ("opt/pkg/a", 11, 0, 1, "overwritten"),
        ("opt/pkg/b", 12, 0, 1, "overwritten"),
        ("srv", 13, 0, 2, "replaced_by_dir"),
    }


def test_directories_merge_and_links_cost_nothing() -> None:
    layers = [
        [d("usr"), d("usr/lib"), f("usr/lib/a.so", 50)],
        [
            FileEntry("usr/lib", DIR, 0, 0o700),
            f("usr/lib/b.so", 60),
            FileEntry("usr/lib/c.so", SYMLINK, 0, 0o777, "a.so"),
            FileEntry("usr/lib/d.so", HARDLINK, 0, 0o644, "usr/lib/a.so"),
        ],
    ]
    fs = apply_layers(layers)
    assert files_of(fs) == {"usr/lib/a.so": (50, 0), "usr/lib/b.so": (60, 1)}
    assert fs.lookup("usr/lib").mode == 0o700  # type: ignore[union-attr]
    assert fs.lookup("usr/lib/c.so").kind == SYMLINK  # type: ignore[union-attr]
    assert fs.waste == []
    assert fs.biggest_dirs(3) == [("usr", 110, 2), ("usr/lib", 110, 2)]


def test_whiteout_of_missing_path_and_implicit_parents() -> None:
    layers = [
        [f("a/b/c/file", 8)],
        [FileEntry("nothing/here", WHITEOUT), FileEntry("a/zzz", WHITEOUT)],
    ]
    fs = apply_layers(layers)
    assert files_of(fs) == {"a/b/c/file": (8, 0)}
    assert fs.lookup("a/b").kind == DIR  # type: ignore[union-attr]
    assert fs.waste == []


def test_empty_files_are_not_waste() -> None:
    fs = apply_layers([[f("empty", 0)], [FileEntry("empty", WHITEOUT)]])
    assert fs.waste == [] and files_of(fs) == {}


def test_shared_prefixes_are_built_once_and_never_leak() -> None:
    from transship.slim.analyze.filesystem import LayerStackCache

    base = [d("usr"), f("usr/a", 10), f("usr/b", 20), d("etc"), f("etc/conf", 5)]
    jre = [f("opt/jre/lib", 30)]
    one = [FileEntry("usr/a", WHITEOUT), f("app/x", 1)]
    two = [f("usr/b", 21, "mine"), FileEntry("etc", OPAQUE), f("etc/new", 2)]
    three = [FileEntry("usr", DIR, 0, 0o700)]
    stacks = LayerStackCache()
    images = {
        "one": (["B", "J", "1"], [base, jre, one]),
        "two": (["B", "J", "2"], [base, jre, two]),
        "three": (["B", "3"], [base, three]),
        "again": (["B", "J", "1"], [base, jre, one]),
    }
    built = {name: stacks.build(keys, layers) for name, (keys, layers) in images.items()}
    for name, (_, layers) in images.items():
        alone = apply_layers(layers)
        assert files_of(built[name]) == files_of(alone), name
        assert waste_of(built[name]) == waste_of(alone), name
    # The shared base tree is one object until an image changes it.
    assert built["one"].lookup("opt") is built["two"].lookup("opt")
    assert built["one"].lookup("usr") is not built["two"].lookup("usr")
    assert built["three"].lookup("usr").mode == 0o700  # type: ignore[union-attr]
    assert built["one"].lookup("usr").mode == 0o755  # type: ignore[union-attr]
