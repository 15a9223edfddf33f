"""`transship offload link`: identical files become relative links into the shared tree;
nothing else is touched, links are never followed, and bad trees give clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from transship.cli.main import app
from transship.slim.lint import lint_text, parse_dockerfile
from transship.slim.offload_link import (
    OffloadError,
    apply_offload,
    offload_link,
    plan_offload,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSSHIP_LANG", "en")


def write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under root, links as their target text, files as their bytes."""
    entries: dict[str, tuple[str, bytes | str]] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory, name)
            relative = str(path.relative_to(root))
            if path.is_symlink():
                entries[relative] = ("link", os.readlink(path))
            elif path.is_file():
                entries[relative] = ("file", path.read_bytes())
    return entries


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An app dir with lib/ and lib_shared/ covering every case, and an outside dir."""
    app_dir = tmp_path / "app"
    lib, shared = app_dir / "lib", app_dir / "lib_shared"
    outside = write(tmp_path / "outside" / "secret.jar", b"outside bytes" * 100)
    spring = b"spring-core 6.1.2" * 1000
    write(shared / "spring-core-6.1.2.jar", spring)
    write(lib / "spring-core-6.1.2.jar", spring)  # identical, same place
    write(shared / "nested" / "deep" / "jackson.jar", b"jackson" * 500)
    write(lib / "nested" / "deep" / "jackson.jar", b"jackson" * 500)  # identical, nested
    write(shared / "guava-33.jar", b"guava" * 700)
    write(lib / "renamed-guava.jar", b"guava" * 700)  # identical content, other name
    write(shared / "log4j-2.20.jar", b"log4j 2.20" * 300)
    write(lib / "log4j-2.20.jar", b"log4j 2.23 (newer)" * 300)  # differs: left alone
    write(lib / "app-own.jar", b"only the app has this" * 50)  # no shared counterpart
    write(shared / "tool.sh", b"#!/bin/sh\necho tool\n", mode=0o644)
    write(lib / "tool.sh", b"#!/bin/sh\necho tool\n", mode=0o755)  # same bytes, other mode
    write(shared / "empty.txt", b"")
    write(lib / "empty.txt", b"")  # empty: nothing to gain
    write(shared / "already.jar", b"already" * 400)
    os.symlink("../lib_shared/already.jar", lib / "already.jar")  # already linked
    os.symlink(str(outside), lib / "outside.jar")  # points out of both trees
    os.symlink(str(outside.parent), lib / "outside-dir")  # a linked directory: not entered
    os.symlink(str(outside), shared / "outside-link.jar")  # shared links are not candidates
    write(lib / "outside-copy.jar", b"outside bytes" * 100)  # only matches via that link
    return lib, shared, outside


def test_plan_counts_every_case(trees) -> None:
    lib, shared, _ = trees
    plan = plan_offload(lib, shared)
    linked = sorted(str(a.lib_file.relative_to(plan.lib_root)) for a in plan.links)
    assert linked == ["nested/deep/jackson.jar", "renamed-guava.jar", "spring-core-6.1.2.jar"]
    assert (plan.already_linked, plan.different, plan.metadata_differs, plan.empty) == (1, 3, 1, 1)
    assert plan.skipped_links == 2  # outside.jar and outside-dir
    assert (
        plan.bytes_saved
        == len(b"spring-core 6.1.2") * 1000 + len(b"jackson") * 500 + len(b"guava") * 700
    )


def test_apply_links_identical_files_relatively_and_touches_nothing_else(trees) -> None:
    lib, shared, outside = trees
    before_lib, before_shared = snapshot(lib), snapshot(shared)
    outside_before = outside.read_bytes()
    result = offload_link(lib, shared)
    assert (result.linked, result.changed_since_plan) == (3, 0)
    after = snapshot(lib)
    assert after["spring-core-6.1.2.jar"] == ("link", "../lib_shared/spring-core-6.1.2.jar")
    assert after["nested/deep/jackson.jar"] == (
        "link",
        "../../../lib_shared/nested/deep/jackson.jar",
    )
    assert after["renamed-guava.jar"] == ("link", "../lib_shared/guava-33.jar")
    changed = {name for name in before_lib if before_lib[name] != after[name]}
    assert changed == {"spring-core-6.1.2.jar", "nested/deep/jackson.jar", "renamed-guava.jar"}
    # Through the links the application reads exactly the bytes it had.
    for name in changed:
        assert (lib / name).read_bytes() == before_lib[name][1]
    assert snapshot(shared) == before_shared and outside.read_bytes() == outside_before
    assert not list(lib.rglob("*.transship-link"))


def test_links_survive_moving_the_whole_tree(trees, tmp_path: Path) -> None:
    lib, shared, _ = trees
    offload_link(lib, shared)
    moved = tmp_path / "elsewhere"
    lib.parent.rename(moved)  # as when COPY puts both trees at another prefix
    assert (moved / "lib" / "renamed-guava.jar").read_bytes() == b"guava" * 700


def test_dry_run_changes_nothing_and_a_second_run_finds_everything_linked(trees) -> None:
    lib, shared, _ = trees
    before = snapshot(lib)
    dry = offload_link(lib, shared, dry_run=True)
    assert dry.linked == 3 and snapshot(lib) == before
    offload_link(lib, shared)
    again = offload_link(lib, shared)
    assert again.linked == 0 and again.plan.already_linked == 4


def test_a_file_changed_after_planning_is_left_alone(trees) -> None:
    lib, shared, _ = trees
    plan = plan_offload(lib, shared)
    write(lib / "spring-core-6.1.2.jar", b"rebuilt in between" * 10)
    result = apply_offload(plan)
    assert (result.linked, result.changed_since_plan) == (2, 1)
    assert (lib / "spring-core-6.1.2.jar").read_bytes() == b"rebuilt in between" * 10


def test_stale_shared_tree_only_costs_bytes(tmp_path: Path) -> None:
    lib, shared = tmp_path / "lib", tmp_path / "shared"
    write(shared / "a.jar", b"a version 1" * 100)  # the offload layer is older
    write(lib / "a.jar", b"a version 2" * 100)
    write(shared / "b.jar", b"b" * 100)
    write(lib / "b.jar", b"b" * 100)
    result = offload_link(lib, shared)
    assert result.linked == 1 and result.plan.different == 1
    assert (lib / "a.jar").read_bytes() == b"a version 2" * 100 and not (lib / "a.jar").is_symlink()
    for path in lib.rglob("*"):
        assert path.resolve().is_file()  # no dangling link


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda lib, shared: shared.rmdir(), "shared directory"),
        (lambda lib, shared: (shared.rmdir(), shared.write_text("x")), "is not a directory"),
        (lambda lib, shared: None, None),
    ],
)
def test_bad_trees_give_clear_errors(tmp_path: Path, setup, words: str | None) -> None:
    lib, shared = tmp_path / "lib", tmp_path / "shared"
    lib.mkdir()
    shared.mkdir()
    setup(lib, shared)
    if words is None:
        assert offload_link(lib, shared).linked == 0
        return
    with pytest.raises(OffloadError, match=words):
        offload_link(lib, shared)


def test_trees_inside_one_another_are_refused(tmp_path: Path) -> None:
    (tmp_path / "lib" / "shared").mkdir(parents=True)
    with pytest.raises(OffloadError, match="must not contain one another"):
        plan_offload(tmp_path / "lib", tmp_path / "lib" / "shared")


def test_unreadable_file_is_a_clear_error(trees, monkeypatch: pytest.MonkeyPatch) -> None:
    import transship.slim.offload_link as module

    lib, shared, _ = trees

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(module, "open", refuse, raising=False)
    with pytest.raises(OffloadError, match=r"cannot read .*: Permission denied"):
        plan_offload(lib, shared)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_unreadable_directory_is_a_clear_error(trees) -> None:
    lib, shared, _ = trees
    locked = lib / "nested"
    locked.chmod(0)
    try:
        with pytest.raises(OffloadError, match="cannot read"):
            plan_offload(lib, shared)
    finally:
        locked.chmod(0o755)


def test_cli_link_prints_counts_and_bytes(trees) -> None:
    lib, shared, _ = trees
    result = runner.invoke(
        app, ["offload", "link", "--lib", str(lib), "--shared", str(shared), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "would link 3 files, 23.4 KiB saved (dry run: nothing changed)"
    assert lines[1].startswith(
        "1 already linked, 3 without an identical shared file, 1 identical but with another mode"
    )
    assert not (lib / "spring-core-6.1.2.jar").is_symlink()
    result = runner.invoke(app, ["offload", "link", "--lib", str(lib), "--shared", str(shared)])
    assert result.stdout.startswith("linked 3 files, 23.4 KiB saved")
    assert (lib / "spring-core-6.1.2.jar").is_symlink()


def test_cli_link_error_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["offload", "link", "--lib", str(tmp_path / "nope"), "--shared", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: lib directory {tmp_path / 'nope'} does not exist"


def test_cli_dockerfile_pattern_parses_and_lints_clean() -> None:
    result = runner.invoke(
        app, ["offload", "dockerfile", "--lib", "/opt/app/lib", "--shared", "/opt/app/shared"]
    )
    assert result.exit_code == 0
    text = result.stdout
    parsed = parse_dockerfile(text)
    assert [i.keyword for i in parsed.instructions if i.keyword == "FROM"] == ["FROM"] * 3
    assert "RUN transship offload link --lib /opt/app/lib --shared /opt/app/shared" in text
    assert "COPY --from=link /opt/app/lib/ /opt/app/lib/" in text
    assert "allowLinking" in text
    assert lint_text(text) == []


def test_cli_dockerfile_notes_in_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSSHIP_LANG", "zh")
    text = runner.invoke(app, ["offload", "dockerfile"]).stdout
    assert "allowLinking" in text and "符号链接" in text
    parse_dockerfile(text)


def test_a_lib_link_through_a_linked_shared_directory_is_not_counted_as_linked(
    tmp_path: Path,
) -> None:
    lib, shared, elsewhere = tmp_path / "lib", tmp_path / "shared", tmp_path / "elsewhere"
    write(elsewhere / "x.jar", b"x" * 10)
    lib.mkdir()
    shared.mkdir()
    os.symlink(elsewhere, shared / "detour")
    os.symlink("../shared/detour/x.jar", lib / "x.jar")
    plan = plan_offload(lib, shared)
    assert (plan.already_linked, plan.skipped_links) == (0, 1)
