"""Bit-exact gzip reconstruction: analyze a gzip blob, rebuild it from its plain bytes.

Real layers from ../shared/fixtures/layers (made by Go 1.19, GNU gzip, pigz, Python's
zlib) must come back with their digests; Go's own compress/gzip (bench/gogzip, built
with the installed Go) checks every level and awkward sizes and write patterns.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import random
import re
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from transship.errors import BundleError, TransshipError
from transship.gzip_rebuild import (
    GoEncoder,
    GzipFormatError,
    PreflateEncoder,
    RebuildImpossible,
    Recipe,
    RecipeError,
    TranscriptEncoder,
    TranscriptTooCostly,
    ZlibEncoder,
    analyze,
    rebuild,
)

REPO = Path(__file__).resolve().parents[1]
LAYERS_DIR = REPO.parent / "shared" / "fixtures" / "layers"
GOGZIP_SOURCE = REPO / "bench" / "gogzip"


def fixture_digests() -> dict[str, str]:
    """file name -> sha256, from the fixtures' README table."""
    readme = LAYERS_DIR / "README.md"
    if not readme.exists():
        return {}
    rows = re.findall(r"^\| (\S+\.gz) \|.*\| ([0-9a-f]{64}) \|$", readme.read_text(), re.M)
    return dict(rows)


FIXTURE_DIGESTS = fixture_digests()


def round_trip(blob: bytes, chunk: int = 100_000, **options: object) -> tuple[Recipe, bytes]:
    """analyze then rebuild (from differently cut plain chunks); returns the recipe
    (after a trip through its bytes) and the rebuilt blob."""
    plain: list[bytes] = []
    recipe = analyze(io.BytesIO(blob), plain.append, **options)
    decoded = Recipe.from_bytes(recipe.to_bytes())
    assert decoded == recipe
    assert bytes(recipe) == recipe.to_bytes()
    data = b"".join(plain)
    pieces = (data[i : i + chunk] for i in range(0, len(data), chunk))
    return decoded, b"".join(rebuild(pieces, decoded.to_bytes()))


def sample_data(kind: str, size: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    if kind == "random":
        return rng.randbytes(size)
    if kind == "text":
        words = [b"layer", b"tar", b"gzip", b"container", b"image", b"digest", b"\n", b"jar"]
        out = bytearray()
        while len(out) < size:
            out += rng.choice(words) + b" "
        return bytes(out[:size])
    # mixed: runs of text, random bytes and zeros, like a tar of assorted files
    out = bytearray()
    while len(out) < size:
        pick = rng.random()
        n = rng.randint(1, 20_000)
        out += (
            rng.randbytes(n)
            if pick < 0.4
            else bytes(n)
            if pick < 0.5
            else sample_data("text", n, rng.randint(0, 999))
        )
    return bytes(out[:size])


# -- real layers ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURE_DIGESTS))
def test_fixture_layers_rebuild_to_their_digest(name: str) -> None:
    path = LAYERS_DIR / name
    blob = path.read_bytes()
    plain: list[bytes] = []
    with path.open("rb") as f:
        recipe = analyze(f, plain.append)
    assert (
        hashlib.sha256(b"".join(plain)).hexdigest()
        == hashlib.sha256(gzip.decompress(blob)).hexdigest()
    )
    rebuilt = b"".join(rebuild(iter(plain), recipe.to_bytes()))
    assert hashlib.sha256(rebuilt).hexdigest() == FIXTURE_DIGESTS[name]
    expected_kind = (
        GoEncoder
        if "go-stdlib" in name
        else ZlibEncoder
        if "python-zlib" in name
        else PreflateEncoder
    )
    assert isinstance(recipe.members[0].encoder, expected_kind)
    # Go and zlib recipes are a few dozen bytes; preflate's under 0.1 % of the blob.
    assert len(recipe.to_bytes()) < max(100, len(blob) // 1000)


def test_fixture_levels_are_recognised() -> None:
    if not FIXTURE_DIGESTS:
        pytest.skip(f"no fixtures in {LAYERS_DIR}")
    expect = {
        "layer-pax.tar.go-stdlib-default.gz": GoEncoder(6),
        "layer-pax.tar.go-stdlib-best.gz": GoEncoder(9),
        "layer-pax.tar.go-stdlib-bestspeed.gz": GoEncoder(1),
        "layer-pax.tar.python-zlib-1.gz": ZlibEncoder(1),
        "layer-pax.tar.python-zlib-9.gz": ZlibEncoder(9),
    }
    for name, encoder in expect.items():
        with (LAYERS_DIR / name).open("rb") as f:
            assert analyze(f, lambda _: None).members[0].encoder == encoder, name


# -- Go's compress/gzip ---------------------------------------------------------------


@pytest.fixture(scope="session")
def gogzip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.skip("Go is not installed (needed to build bench/gogzip)")
    out = tmp_path_factory.mktemp("gogzip") / "gogzip"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=GOGZIP_SOURCE, env=env, check=True)
    return out


def go_gzip(tool: Path, data: bytes, level: int, bufsize: int = 0) -> bytes:
    return subprocess.run(
        [str(tool), "-level", str(level), "-bufsize", str(bufsize)],
        input=data,
        capture_output=True,
        check=True,
    ).stdout


CASES = [("text", n) for n in (0, 1, 16, 17, 65535, 65536, 65537, 3 * 65536 + 5)] + [
    ("random", 3 * 65536 + 5),
    ("mixed", 400_000),
]


@pytest.mark.parametrize("level", [-2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_go_levels_rebuild_exactly(gogzip: Path, level: int) -> None:
    for kind, size in CASES:
        blob = go_gzip(gogzip, sample_data(kind, size), level)
        recipe, rebuilt = round_trip(blob, chunk=7777)
        assert rebuilt == blob, (kind, size)
        encoder = recipe.members[0].encoder
        assert isinstance(encoder, GoEncoder), (kind, size, encoder)
        # Several levels can give the same bytes on tiny or incompressible input.
        if kind == "text" and size > 65536:
            assert encoder.level == level


def test_go_mixed_data_several_megabytes(gogzip: Path) -> None:
    data = sample_data("mixed", 3_000_000, seed=3)
    for level in (1, 6, 9):
        blob = go_gzip(gogzip, data, level)
        recipe, rebuilt = round_trip(blob, chunk=1 << 20)
        assert rebuilt == blob
        assert recipe.members[0].encoder == GoEncoder(level)


def planted_long_matches(size: int = 1_500_000) -> bytes:
    """Random bytes with a copy from 32700 bytes back at the one window position where
    Go's output depends on how the writer cut its writes."""
    data = bytearray(random.Random(5).randbytes(size))
    for frame in range(size // 32768):
        p = 65274 + frame * 32768
        if p + 8 < size:
            data[p : p + 8] = data[p - 32700 : p - 32700 + 8]
    return bytes(data)


@pytest.mark.parametrize("bufsize", [1, 7, 0])
def test_go_write_sizes_that_slide_the_window_early(gogzip: Path, bufsize: int) -> None:
    data = planted_long_matches()
    blob = go_gzip(gogzip, data, 6, bufsize)
    recipe, rebuilt = round_trip(blob)
    assert rebuilt == blob
    encoder = recipe.members[0].encoder
    assert isinstance(encoder, GoEncoder)
    if bufsize == 0:
        assert encoder.early_slides == ()
    else:  # 1-byte writes slide early in every frame, 7-byte writes in every 7th
        step = 1 if bufsize == 1 else 7
        frames = [f for f in range(len(data) // 32768) if (f + 1) % step == 0]
        assert list(encoder.early_slides) == frames[: len(encoder.early_slides)]
        assert len(encoder.early_slides) >= len(frames) - 1


# -- zlib ------------------------------------------------------------------------------


@pytest.mark.parametrize("level", range(1, 10))
def test_zlib_levels_rebuild_exactly(level: int) -> None:
    for kind in ("text", "mixed"):
        blob = gzip.compress(sample_data(kind, 400_000), compresslevel=level, mtime=0)
        recipe, rebuilt = round_trip(blob)
        assert rebuilt == blob
        encoder = recipe.members[0].encoder
        assert isinstance(encoder, ZlibEncoder)
        if kind == "text":
            assert encoder.level == level


@pytest.mark.parametrize("mem_level", [8, 9])
def test_native_zlib_gives_zlibs_bytes_for_any_write_sizes(mem_level: int) -> None:
    """The native zlib encoder (a Rust port for these settings) against the zlib Python
    links, writes cut at random (the window slides as the writes fall)."""
    from transship import _native

    data = sample_data("mixed", 1_200_000) + sample_data("text", 300_000)
    rng = random.Random(mem_level)
    for level in (1, 3, 4, 6, 9):
        reference = zlib.compressobj(level, zlib.DEFLATED, -15, mem_level)
        expected = reference.compress(data) + reference.flush()
        encoder = _native.Deflater(("zlib", level, mem_level, 0))
        out, pos = [], 0
        while pos < len(data):
            size = rng.choice((1, 7, 4096, 65_536, 300_000))
            out.append(encoder.compress(data[pos : pos + size]))
            pos += size
        out.append(encoder.finish())
        assert b"".join(out) == expected, (level, mem_level)


def test_header_fields_members_and_tail_are_kept() -> None:
    text = sample_data("text", 200_000)
    named = io.BytesIO()
    with gzip.GzipFile("layer.tar", "wb", compresslevel=6, fileobj=named, mtime=1234567) as f:
        f.write(text)
    second = zlib.compressobj(1, zlib.DEFLATED, 31)
    member2 = second.compress(b"second member " * 1000) + second.flush()
    blob = named.getvalue() + member2 + bytes(512)  # zero padding after the members
    recipe, rebuilt = round_trip(blob)
    assert rebuilt == blob
    assert len(recipe.members) == 2
    assert b"layer.tar\x00" in recipe.members[0].header
    assert recipe.tail == bytes(512)


def test_threaded_and_inline_analysis_agree() -> None:
    blob = gzip.compress(sample_data("mixed", 1_000_000), compresslevel=6, mtime=0)
    inline = analyze(io.BytesIO(blob), lambda _: None, threaded=False)
    threaded = analyze(io.BytesIO(blob), lambda _: None, threaded=True)
    assert inline == threaded


# -- transcripts -----------------------------------------------------------------------


def transcript_round_trip(blob: bytes, chunk: int = 77_777) -> tuple[Recipe, bytes]:
    return round_trip(blob, chunk, check=False, transcript=True)


def assert_transcribed(recipe: Recipe) -> None:
    assert recipe.checked
    assert all(isinstance(m.encoder, TranscriptEncoder) for m in recipe.members), recipe


@pytest.mark.parametrize("level", [-2, 0, 1, 2, 4, 6, 9])
def test_go_streams_rebuild_from_their_transcripts(gogzip: Path, level: int) -> None:
    for kind, size in [*CASES, ("text", 2_000_000), ("mixed", 3_000_000)]:
        blob = go_gzip(gogzip, sample_data(kind, size), level)
        recipe, rebuilt = transcript_round_trip(blob)
        assert rebuilt == blob, (kind, size)
        assert_transcribed(recipe)


@pytest.mark.parametrize("bufsize", [1, 7])
def test_transcripts_follow_go_writers_that_slide_the_window_early(
    gogzip: Path, bufsize: int
) -> None:
    for data in (planted_long_matches(), sample_data("mixed", 1_500_000, seed=5)):
        blob = go_gzip(gogzip, data, 6, bufsize)
        recipe, rebuilt = transcript_round_trip(blob)
        assert rebuilt == blob
        assert_transcribed(recipe)


@pytest.mark.parametrize(("level", "mem_level"), [(1, 8), (6, 8), (9, 9), (4, 1)])
def test_zlib_streams_rebuild_from_their_transcripts(level: int, mem_level: int) -> None:
    for kind in ("text", "mixed", "random"):
        data = sample_data(kind, 1_500_000)
        deflate = zlib.compressobj(level, zlib.DEFLATED, 31, mem_level)
        blob = deflate.compress(data) + deflate.flush()
        for chunk in (1_000, 77_777, len(data) + 1):
            recipe, rebuilt = transcript_round_trip(blob, chunk)
            assert rebuilt == blob, (kind, chunk)
            assert_transcribed(recipe)


def test_transcripts_keep_sync_flushes_and_members() -> None:
    """Empty stored blocks (a sync flush), fixed-code blocks, several members."""
    data = sample_data("text", 200_000)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = deflate.compress(data[:1000]) + deflate.flush(zlib.Z_SYNC_FLUSH)
    raw += deflate.compress(data[1000:1010]) + deflate.flush(zlib.Z_FULL_FLUSH)
    raw += deflate.compress(data[1010:]) + deflate.flush()
    member = (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        + raw
        + zlib.crc32(data).to_bytes(4, "little")
        + len(data).to_bytes(4, "little")
    )
    small = gzip.compress(b"abc", mtime=0)  # a single fixed-code block
    blob = member + small + member
    recipe, rebuilt = transcript_round_trip(blob, 4_321)
    assert rebuilt == blob
    assert len(recipe.members) == 3
    assert_transcribed(recipe)


def test_fixture_layers_rebuild_from_their_transcripts() -> None:
    """Whatever made them: Go, zlib, GNU gzip, pigz."""
    if not FIXTURE_DIGESTS:
        pytest.skip(f"no fixtures in {LAYERS_DIR}")
    for name in sorted(FIXTURE_DIGESTS):
        recipe, rebuilt = transcript_round_trip((LAYERS_DIR / name).read_bytes())
        assert hashlib.sha256(rebuilt).hexdigest() == FIXTURE_DIGESTS[name], name
        assert_transcribed(recipe)


def test_a_transcript_is_its_own_check() -> None:
    with pytest.raises(ValueError, match="check=False"):
        analyze(io.BytesIO(gzip.compress(b"x")), lambda _: None, transcript=True)


def test_costly_transcripts_are_left_unchecked() -> None:
    """A transcript that costs more than allowed is given up: the member comes back
    unchecked, for the caller to check by search if it wants."""
    jars = gzip.compress(sample_data("mixed", 6_000_000, seed=11), compresslevel=6, mtime=0)
    quick = {"check": False, "transcript": True}
    kept = analyze(io.BytesIO(jars), lambda _: None, **quick, max_transcript_share=0.5)
    assert_transcribed(kept)
    assert not kept.costly_transcript
    assert 0 < kept.transcript_size < 0.5 * 6_000_000
    costly = analyze(io.BytesIO(jars), lambda _: None, **quick, max_transcript_share=0.0001)
    assert not costly.checked and costly.costly_transcript
    assert costly.transcript_size == 0
    assert costly.rebuild_seconds() > kept.rebuild_seconds()


def test_costly_transcripts_can_stop_the_analysis_at_once() -> None:
    """stop_when_transcript_costly: the caller keeps such a layer as it is, so the rest
    of it is not decompressed for nothing."""
    text = gzip.compress(sample_data("text", 8_000_000), compresslevel=6, mtime=0)
    seen = 0

    def sink(piece: bytes) -> None:
        nonlocal seen
        seen += len(piece)

    options = {"check": False, "transcript": True, "max_transcript_share": 0.05}
    with pytest.raises(TranscriptTooCostly, match="5%"):
        analyze(io.BytesIO(text), sink, **options, stop_when_transcript_costly=True)
    assert 0 < seen < 8_000_000
    assert analyze(io.BytesIO(text), lambda _: None, **options).costly_transcript
    assert isinstance(TranscriptTooCostly("x"), RebuildImpossible)


def test_damaged_transcripts_never_give_the_original_silently() -> None:
    blob = gzip.compress(sample_data("text", 600_000), compresslevel=6, mtime=0)
    plain: list[bytes] = []
    recipe = analyze(io.BytesIO(blob), plain.append, check=False, transcript=True)
    (member,) = recipe.members
    assert isinstance(member.encoder, TranscriptEncoder)
    packed = zstandard.ZstdDecompressor().decompressobj().decompress(member.encoder.stored)
    stored = bytearray(member.encoder.stored)
    damaged = [bytes(stored[: len(stored) // 2])]  # truncated
    stored[len(stored) // 2] ^= 0x10
    damaged.append(bytes(stored))  # one bit flipped in the compressed form
    rng = random.Random(3)
    for _ in range(20):  # bits flipped in the records themselves
        records = bytearray(packed)
        records[rng.randrange(len(records))] ^= 1 << rng.randrange(8)
        damaged.append(zstandard.ZstdCompressor().compress(bytes(records)))
    for stored_bytes in damaged:
        broken = Recipe((dataclasses.replace(member, encoder=TranscriptEncoder(stored_bytes)),))
        try:
            rebuilt = b"".join(rebuild(plain, broken))
        except RecipeError as exc:
            assert "transcript" in str(exc)
        else:
            assert rebuilt != blob


# -- preflate fallback ----------------------------------------------------------------


class Unseekable(io.RawIOBase):
    """A pipe-like stream: no seek, no tell."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self._inner.read(len(b))
        b[: len(data)] = data
        return len(data)


def test_preflate_fallback_in_one_pass_or_with_a_second_read(monkeypatch) -> None:
    path = LAYERS_DIR / "layer-pax.tar.gnu-gzip-6.gz"
    if not path.exists():
        pytest.skip(f"no fixtures in {LAYERS_DIR}")
    blob = path.read_bytes()
    with pytest.raises(RebuildImpossible, match="no known encoder"):
        analyze(io.BytesIO(blob), lambda _: None, allow_preflate=False)

    # The candidate encoders fail within the first compressed bytes, which are still at
    # hand: preflate takes over in the same pass, even on a stream that cannot seek.
    one_pass = analyze(Unseekable(blob), lambda _: None)
    assert isinstance(one_pass.members[0].encoder, PreflateEncoder)
    assert b"".join(rebuild([gzip.decompress(blob)], one_pass)) == blob

    # Without those bytes at hand preflate needs a second read of the blob.
    monkeypatch.setattr("transship.gzip_rebuild._HEAD_KEEP", 0)
    with pytest.raises(RebuildImpossible, match="not seekable"):
        analyze(Unseekable(blob), lambda _: None)
    two_pass = analyze(io.BytesIO(blob), lambda _: None)
    assert two_pass == one_pass


def test_stream_positioned_past_its_start() -> None:
    """analyze reads from the stream's current position (a blob inside a bigger file)."""
    path = LAYERS_DIR / "layer-pax.tar.pigz-6.gz"
    if not path.exists():
        pytest.skip(f"no fixtures in {LAYERS_DIR}")
    blob = path.read_bytes()
    stream = io.BytesIO(b"x" * 1000 + blob)
    stream.seek(1000)
    plain: list[bytes] = []
    recipe = analyze(stream, plain.append)
    assert b"".join(rebuild(plain, recipe)) == blob


# -- bad input -------------------------------------------------------------------------


def gzip_blob() -> bytes:
    return gzip.compress(sample_data("mixed", 300_000), compresslevel=6, mtime=0)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b"", "empty input"),
        (lambda b: b"PK\x03\x04" + b[4:], "wrong magic"),
        (lambda b: b[:5], "truncated gzip header"),
        (lambda b: b[: len(b) // 2], "truncated gzip stream"),
        (lambda b: b[:-3], "trailer is missing"),
        (lambda b: b[:-8] + bytes(8), "CRC-32"),
        (lambda b: b[:20] + bytes([b[20] ^ 0xFF]) + b[21:], "corrupt"),
    ],
)
def test_bad_gzip_raises_a_clear_error(mangle, message: str) -> None:
    with pytest.raises(GzipFormatError, match=message) as info:
        analyze(io.BytesIO(mangle(gzip_blob())), lambda _: None)
    assert isinstance(info.value, RebuildImpossible)
    assert isinstance(info.value, TransshipError)


def test_corrupt_recipe_bytes_are_rejected() -> None:
    recipe_bytes = analyze(io.BytesIO(gzip_blob()), lambda _: None).to_bytes()
    for i in range(len(recipe_bytes)):
        damaged = bytearray(recipe_bytes)
        damaged[i] ^= 0x40
        with pytest.raises(RecipeError):
            Recipe.from_bytes(bytes(damaged))
    for garbage in (b"", b"TSGZ", recipe_bytes[:-1], recipe_bytes + b"\x00", os.urandom(64)):
        with pytest.raises(RecipeError):
            Recipe.from_bytes(garbage)
    with pytest.raises(RecipeError):
        list(rebuild([b"data"], b"not a recipe"))
    assert issubclass(RecipeError, BundleError)


def version_2_recipe(recipe: Recipe, hints: bytes | None) -> bytes:
    """`recipe` (one zlib member) as the version 2 format wrote it: the member ends
    with a hinted flag and, when set, its stored match hints."""
    from transship.gzip_rebuild import _checksum, _Writer

    (member,) = recipe.members
    assert isinstance(member.encoder, ZlibEncoder)
    w = _Writer()
    w.buf += b"TSGZ"
    for value in (2, 1):
        w.uint(value)
    w.blob(member.header)
    w.uint(member.plain_size)
    w.blob(member.trailer)
    for value in (2, member.encoder.level, member.encoder.mem_level, member.encoder.strategy):
        w.uint(value)
    w.uint(hints is not None)
    if hints is not None:
        w.blob(hints)
    w.blob(recipe.tail)
    w.uint(recipe.compressed_size)
    return bytes(w.buf) + _checksum(bytes(w.buf))


def test_version_2_recipes_still_rebuild_unless_they_replay_hints() -> None:
    blob = gzip_blob()
    plain: list[bytes] = []
    recipe = analyze(io.BytesIO(blob), plain.append)
    old = version_2_recipe(recipe, hints=None)
    assert old != recipe.to_bytes()
    assert Recipe.from_bytes(old) == recipe
    assert b"".join(rebuild(plain, old)) == blob
    with pytest.raises(RecipeError, match="version 2 with stored match hints"):
        Recipe.from_bytes(version_2_recipe(recipe, hints=b"\x00" * 8))


def test_plain_data_of_the_wrong_length_is_rejected() -> None:
    blob = gzip_blob()
    plain: list[bytes] = []
    recipe = analyze(io.BytesIO(blob), plain.append)
    data = b"".join(plain)
    with pytest.raises(RecipeError, match="shorter"):
        list(rebuild([data[:-1]], recipe))
    with pytest.raises(RecipeError, match="longer"):
        list(rebuild([data, b"!"], recipe))


def test_rebuilt_bytes_change_when_the_plain_data_does() -> None:
    """The recipe does not carry the data: other plain bytes give other output (which the
    caller's digest check then rejects)."""
    blob = gzip_blob()
    plain: list[bytes] = []
    recipe = analyze(io.BytesIO(blob), plain.append)
    data = bytearray(b"".join(plain))
    data[1000] ^= 1
    assert b"".join(rebuild([bytes(data)], recipe)) != blob


# -- bounded memory --------------------------------------------------------------------


def chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_analysis_never_holds_the_whole_stream() -> None:
    """The reader is asked for small pieces and the sink gets bounded pieces."""
    blob = gzip.compress(bytes(50_000_000), compresslevel=9, mtime=0)  # 50 MB of zeros

    class CountingReader(io.BytesIO):
        largest = 0

        def read(self, n: int | None = -1) -> bytes:  # type: ignore[override]
            data = super().read(n)
            CountingReader.largest = max(CountingReader.largest, len(data))
            return data

    largest_piece = 0

    def sink(piece: bytes) -> None:
        nonlocal largest_piece
        largest_piece = max(largest_piece, len(piece))

    recipe = analyze(CountingReader(blob), sink)
    assert recipe.plain_size == 50_000_000
    assert CountingReader.largest <= 1 << 20
    assert largest_piece <= 4 << 20
    assert b"".join(rebuild(chunks_of(bytes(50_000_000), 1 << 20), recipe)) == blob


@pytest.mark.parametrize("threaded", [True, False])
def test_an_analysis_leaves_no_cycle_holding_its_encoders(threaded: bool) -> None:
    """Each analysis's candidate encoders (some MiB of native memory) are freed when it
    ends, not whenever the garbage collector next runs: a save checks many layers."""
    import gc

    from transship import gzip_rebuild

    data = gzip.compress(os.urandom(200_000) + bytes(300_000), 6)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            analyze(io.BytesIO(data), lambda _: None, threaded=threaded)
        left = [
            o
            for o in gc.get_objects()
            if isinstance(o, (gzip_rebuild._Verification, gzip_rebuild._Background))
        ]
    finally:
        gc.enable()
    assert left == []
