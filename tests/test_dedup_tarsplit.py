"""The tar splitter: split → rebuild gives back the exact bytes, and contents are the files."""

from __future__ import annotations

import hashlib
import io
import random
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SHARED_LAYERS_DIR
from tests.support import tar_samples
from transship.dedup.tarsplit import ContentRef, TarSplitter, rebuild_tar


class RecordingSink:
    """Keeps everything the splitter emits, to rebuild from and to inspect."""

    def __init__(self) -> None:
        self.skeleton_bytes = bytearray()
        self.refs: list[ContentRef] = []
        self.contents: dict[bytes, bytes] = {}
        self.names: list[tuple[str, int]] = []
        self._before = 0
        self._current = bytearray()
        self._declared = 0

    def skeleton(self, data: memoryview | bytes) -> None:
        self.skeleton_bytes += data
        self._before += len(data)

    def content_begin(self, name: str, declared_size: int) -> None:
        self._current = bytearray()
        self._declared = declared_size
        self.names.append((name, declared_size))

    def content_data(self, data: memoryview) -> None:
        self._current += data

    def content_end(self, digest: bytes, size: int) -> None:
        assert size == len(self._current) <= self._declared
        assert hashlib.sha256(self._current).digest() == digest
        self.contents[digest] = bytes(self._current)
        self.refs.append(ContentRef(self._before, size, digest))
        self._before = 0

    def read_content(self, digest: bytes, size: int) -> list[bytes]:
        data = self.contents[digest]
        return [data[: size // 2], data[size // 2 :]]


def split(data: bytes, chunk_sizes: list[int] | int = 1 << 16, **options: int) -> RecordingSink:
    sink = RecordingSink()
    splitter = TarSplitter(sink, **options)
    pos = 0
    sizes = chunk_sizes if isinstance(chunk_sizes, list) else [chunk_sizes]
    i = 0
    while pos < len(data):
        step = max(1, sizes[i % len(sizes)])
        splitter.feed(data[pos : pos + step])
        pos += step
        i += 1
    stats = splitter.finish()
    assert stats.tar_size == len(data)
    assert stats.tar_sha256 == hashlib.sha256(data).digest()
    assert stats.skeleton_size == len(sink.skeleton_bytes)
    assert stats.skeleton_size + stats.content_size == len(data)
    assert stats.content_count == len(sink.refs)
    return sink


def rebuilt(sink: RecordingSink, chunk_size: int = 1 << 20) -> bytes:
    return b"".join(
        rebuild_tar(
            io.BytesIO(bytes(sink.skeleton_bytes)),
            sink.refs,
            sink.read_content,
            chunk_size=chunk_size,
        )
    )


def assert_round_trip(
    data: bytes, chunk_sizes: list[int] | int = 1 << 16, **options: int
) -> RecordingSink:
    sink = split(data, chunk_sizes, **options)
    assert rebuilt(sink) == data
    return sink


def regular_members(data: bytes, min_size: int = 1) -> dict[str, bytes]:
    """What tarfile says the regular files hold."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if member.isreg() and member.size >= min_size:
                out[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return out


def split_files(sink: RecordingSink) -> dict[str, bytes]:
    return {
        name: sink.contents[ref.digest]
        for (name, _), ref in zip(sink.names, sink.refs, strict=True)
    }


@pytest.mark.parametrize("name", ["layer-pax.tar", "layer-gnu.tar"])
@pytest.mark.parametrize("chunk", [1, 511, 512, 4096, 1 << 20])
def test_shared_fixture_layers_round_trip(name: str, chunk: int) -> None:
    path = SHARED_LAYERS_DIR / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    data = path.read_bytes()
    if chunk == 1:
        data_chunks: list[int] | int = [1, 7, 1000, 3, 65536]  # byte-level and odd splits
    else:
        data_chunks = chunk
    sink = assert_round_trip(data, data_chunks)
    # Contents are exactly the regular files, named as tarfile names them.
    assert split_files(sink) == regular_members(data)
    names = [n for n, _ in sink.names]
    assert any(
        n.endswith("a-file-whose-full-path-is-longer-than-one-hundred-characters.properties")
        for n in names
    )
    assert "app/配置-中文名.yml" in names
    # The jar stored twice under two names has one digest.
    assert len(sink.contents) < len(sink.refs)


@pytest.mark.parametrize(
    "fmt",
    [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
    ids=["ustar", "gnu", "pax"],
)
def test_python_tarfile_formats(fmt: int) -> None:
    data = tar_samples.python_tar(fmt)
    sink = assert_round_trip(data, [100, 513, 1, 4096])
    assert split_files(sink) == regular_members(data)
    # Hard links, symlinks, directories and empty files carry no content.
    assert all(size > 0 for _, size in sink.names)
    assert "app/hard" not in dict(sink.names) and "app/link" not in dict(sink.names)


def test_min_content_size_keeps_small_files_in_skeleton() -> None:
    data = tar_samples.python_tar(tarfile.PAX_FORMAT)
    sink = assert_round_trip(data, min_content_size=1000)
    assert split_files(sink) == regular_members(data, min_size=1000)
    assert "app/tiny.txt" not in dict(sink.names)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tar_samples.make_tree(tmp_path_factory.mktemp("tree") / "root")


@pytest.mark.parametrize("fmt", ["gnu", "oldgnu", "posix", "ustar", "v7"])
@pytest.mark.parametrize("sparse", [False, True], ids=["plain", "sparse"])
def test_gnu_tar_formats(tree: Path, fmt: str, sparse: bool) -> None:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar not installed")
    if sparse and fmt in ("ustar", "v7"):
        pytest.skip(f"GNU tar cannot write sparse members in {fmt} format")
    if fmt in ("ustar", "v7"):
        # Names over the format's limits cannot be stored there: archive a subset.
        tree = tree / "lib"
    data = tar_samples.gnu_tar(tree, fmt, sparse=sparse)
    sink = assert_round_trip(data, [1000, 1, 512, 70000])
    files = split_files(sink)
    if not sparse:
        assert files == regular_members(data)
    else:
        # A sparse member's stored data is one content; every other file is as tarfile sees it.
        expected = regular_members(data)
        others = {n: c for n, c in files.items() if not n.endswith("sparse.img")}
        assert others == {n: c for n, c in expected.items() if not n.endswith("sparse.img")}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next(m for m in tar if m.name.endswith("sparse.img"))
        stored = sum(length for _, length in member.sparse or [])
        (content,) = (c for n, c in files.items() if n.endswith("sparse.img"))
        if fmt == "posix":  # PAX sparse 1.0: the map precedes the data
            assert len(content) > stored
            assert data.find(content) % 512 == 0
        else:  # old GNU sparse: the data after the extension blocks, exactly
            assert len(content) == stored < member.size
            assert content == data[member.offset_data : member.offset_data + stored]
        assert content.rstrip(b"\0").endswith(b"data29" * 700)


def test_go_archive_tar(tmp_path: Path) -> None:
    data = tar_samples.go_tar(tmp_path)
    if data is None:
        pytest.skip("Go not installed")
    sink = assert_round_trip(data, [3, 512, 4096])
    assert split_files(sink) == regular_members(data)
    assert any("日本" in name for name, _ in sink.names)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(1024),  # end-of-archive only
        bytes(10240),  # a whole empty record
        b"this is not a tar at all" * 100,
        bytes(512) + b"garbage after a zero block" * 30,
        b"\x1f\x8b\x08\x00" + bytes(600),  # a gzip header, not a tar
    ],
    ids=["empty", "eoa", "record", "garbage", "zeros-then-garbage", "gzip-magic"],
)
def test_non_tars_round_trip(data: bytes) -> None:
    sink = assert_round_trip(data, [5, 512, 1000])
    assert not sink.refs


def test_empty_tar_from_tarfile() -> None:
    buf = io.BytesIO()
    tarfile.open(fileobj=buf, mode="w").close()
    sink = assert_round_trip(buf.getvalue())
    assert not sink.refs and len(sink.skeleton_bytes) == len(buf.getvalue())


def test_truncated_tars_round_trip() -> None:
    data = tar_samples.python_tar(tarfile.PAX_FORMAT)
    rng = random.Random(7)
    cuts = {0, 1, 511, 512, 513, len(data) - 1} | {rng.randrange(len(data)) for _ in range(40)}
    for cut in sorted(cuts):
        assert_round_trip(data[:cut], [rng.randrange(1, 3000) for _ in range(5)])


def test_truncated_inside_content_keeps_partial_content() -> None:
    payload = bytes(range(256)) * 40
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    data = buf.getvalue()
    header_end = data.index(payload[:64])
    truncated = data[: header_end + 1000]
    sink = assert_round_trip(truncated)
    assert [ref.size for ref in sink.refs] == [1000]
    assert sink.contents[sink.refs[0].digest] == payload[:1000]


def test_trailing_garbage_after_archive() -> None:
    data = tar_samples.python_tar(tarfile.GNU_FORMAT) + b"trailing bytes that are not tar"
    sink = assert_round_trip(data)
    assert split_files(sink) == regular_members(data[: -len(b"trailing bytes that are not tar")])


def test_concatenated_archives_are_both_split() -> None:
    first = tar_samples.python_tar(tarfile.PAX_FORMAT, extra_files={"only-first": b"1" * 3000})
    second = tar_samples.python_tar(tarfile.GNU_FORMAT, extra_files={"only-second": b"2" * 3000})
    sink = assert_round_trip(first + second)
    names = dict(sink.names)
    assert "only-first" in names and "only-second" in names


def test_rebuild_rejects_short_content() -> None:
    data = tar_samples.python_tar(tarfile.PAX_FORMAT)
    sink = split(data)

    def short(digest: bytes, size: int) -> list[bytes]:
        return [sink.contents[digest][:-1]]

    with pytest.raises(ValueError, match="expected"):
        b"".join(rebuild_tar(io.BytesIO(bytes(sink.skeleton_bytes)), sink.refs, short))


# -- properties ----------------------------------------------------------------------------

_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=160,
)
_MEMBER = st.tuples(
    _NAMES,
    st.sampled_from(["file", "file", "file", "dir", "symlink", "hardlink", "fifo"]),
    st.binary(max_size=1500),
    st.integers(min_value=0, max_value=2),  # pax extras: 0 none, 1 xattr, 2 big uid
)


def _build_tar(members: list[tuple[str, str, bytes, int]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for name, kind, data, extra in members:
            info = tarfile.TarInfo(name)
            if fmt == tarfile.PAX_FORMAT and extra == 1:
                info.pax_headers = {"SCHILY.xattr.user.test": "v" * len(data[:50])}
            if fmt != tarfile.USTAR_FORMAT and extra == 2:
                info.uid = 3_000_000
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.linkname = name[::-1] if kind in ("symlink", "hardlink") else ""
            tar.addfile(info)
    return buf.getvalue()


_CORRUPTION = st.one_of(
    st.just(("none", 0, b"")),
    st.tuples(st.just("truncate"), st.integers(min_value=0), st.just(b"")),
    st.tuples(st.just("flip"), st.integers(min_value=0), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=700)),
    st.tuples(st.just("append"), st.just(0), st.binary(min_size=1, max_size=700)),
)


def _corrupt(data: bytes, how: tuple[str, int, bytes]) -> bytes:
    kind, pos, extra = how
    if not data:
        return data + extra
    pos %= len(data)
    if kind == "truncate":
        return data[:pos]
    if kind == "flip":
        return data[:pos] + bytes(b ^ 0xFF for b in extra) + data[pos + len(extra) :]
    if kind == "insert":
        return data[:pos] + extra + data[pos:]
    if kind == "append":
        return data + extra
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    members=st.lists(_MEMBER, max_size=12),
    fmt=st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    corruption=_CORRUPTION,
    chunks=st.lists(st.integers(min_value=1, max_value=2000), min_size=1, max_size=6),
    min_content=st.sampled_from([1, 64, 600]),
)
def test_property_random_tars_with_corruptions_round_trip(
    members: list[tuple[str, str, bytes, int]],
    fmt: int,
    corruption: tuple[str, int, bytes],
    chunks: list[int],
    min_content: int,
) -> None:
    if fmt == tarfile.USTAR_FORMAT:
        members = [(n.encode("ascii", "replace").decode()[:99], k, d, e) for n, k, d, e in members]
    try:
        data = _build_tar(members, fmt)
    except (ValueError, UnicodeError):
        return  # tarfile cannot write this member in this format; nothing to check
    data = _corrupt(data, corruption)
    sink = assert_round_trip(data, chunks, min_content_size=min_content)
    if corruption[0] == "none":
        assert split_files(sink) == regular_members(data, min_size=min_content)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=5000), chunks=st.lists(st.integers(1, 1200), min_size=1, max_size=5))
def test_property_any_bytes_round_trip(data: bytes, chunks: list[int]) -> None:
    assert_round_trip(data, chunks)


@settings(max_examples=100, deadline=None)
@given(
    blocks=st.lists(st.sampled_from(["header", "zero", "data"]), max_size=12),
    seed=st.integers(0, 2**32),
)
def test_property_header_lookalikes_round_trip(blocks: list[str], seed: int) -> None:
    """Valid-looking headers with absurd sizes and types between random blocks."""
    rng = random.Random(seed)
    out = bytearray()
    for kind in blocks:
        if kind == "zero":
            out += bytes(512)
        elif kind == "data":
            out += rng.randbytes(rng.randrange(1, 1500))
        else:
            info = tarfile.TarInfo(f"f{rng.randrange(1000)}")
            info.size = rng.choice([0, 1, 511, 512, 10**6, 8**11 - 1])
            info.type = rng.choice([b"0", b"x", b"g", b"L", b"K", b"S", b"5", b"Z"])
            out += info.tobuf(format=rng.choice([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT]))
    assert_round_trip(bytes(out), [rng.randrange(1, 3000) for _ in range(4)])
