"""Pure helpers of the bundle benchmark: what the fleet's numbers are, and whether the
measured numbers meet the targets the issues set. No I/O here, so they are easy to test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

# ---------------------------------------------------------------------------------------
# the fleet


def image_blob_sizes(image: Mapping, config_sizes: Mapping[str, int]) -> dict[str, int]:
    """digest -> size of every blob an image needs: its config and its layers.

    fleet.json records layer sizes but not config sizes; those come from `config_sizes`.
    """
    blobs = {image["config_digest"]: config_sizes[image["config_digest"]]}
    for layer in image["layers"]:
        blobs[layer["digest"]] = layer["size"]
    return blobs


def new_blobs(
    old_images: Iterable[Mapping], new_images: Iterable[Mapping], config_sizes: Mapping[str, int]
) -> dict[str, int]:
    """digest -> size of the blobs the new images use that none of the old images has.

    This is what an incremental bundle of the new images, made against a bundle of the
    old ones, must carry at the least (without compressing anything again).
    """
    old: set[str] = set()
    for image in old_images:
        old.update(image_blob_sizes(image, config_sizes))
    new: dict[str, int] = {}
    for image in new_images:
        for digest, size in image_blob_sizes(image, config_sizes).items():
            if digest not in old:
                new[digest] = size
    return new


def new_blob_bytes(
    old_images: Iterable[Mapping], new_images: Iterable[Mapping], config_sizes: Mapping[str, int]
) -> int:
    """Bytes of `new_blobs`, each blob once."""
    return sum(new_blobs(old_images, new_images, config_sizes).values())


def unique_layers(images: Iterable[Mapping]) -> list[Mapping]:
    """One layer per distinct uncompressed tar (diff_id), the first blob seen of each.

    Two blobs with one diff_id (the same tar compressed two ways) are one tar.
    """
    seen: set[str] = set()
    layers = []
    for image in images:
        for layer in image["layers"]:
            if layer["diff_id"] not in seen:
                seen.add(layer["diff_id"])
                layers.append(layer)
    return layers


def decompressor_for(magic: bytes) -> list[str]:
    """The command that writes a layer blob's tar to stdout, chosen by its first bytes."""
    if magic.startswith(GZIP_MAGIC):
        return ["gzip", "-dc"]
    if magic.startswith(ZSTD_MAGIC):
        return ["zstd", "-dc"]
    return ["cat"]  # an uncompressed layer is its tar


def layout_ref_digests(index: Mapping) -> dict[str, str]:
    """ref name -> manifest digest, from an OCI layout's index.json."""
    refs = {}
    for desc in index.get("manifests", []):
        name = (desc.get("annotations") or {}).get(REF_NAME)
        if name:
            refs[name] = desc["digest"]
    return refs


def changed_digests(expected: Mapping[str, str], actual: Mapping[str, str | None]) -> list[str]:
    """Names whose actual digest is not the expected one (missing counts as changed)."""
    return [name for name, digest in expected.items() if actual.get(name) != digest]


# ---------------------------------------------------------------------------------------
# targets


@dataclass(frozen=True)
class Target:
    goal: str  # as the issue states it
    measured: str  # the number(s) it was judged on
    met: bool | None  # None: not measured in this run


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _judge(
    goal: str, value: float | None, ok: Callable[[float], bool], shown: Callable[[float], str]
) -> Target:
    if value is None:
        return Target(goal, "not measured", None)
    return Target(goal, shown(value), ok(value))


def _mb_and_mib(n: float) -> str:
    """Both units: the issues say MB, GNU time and most tools say MiB."""
    return f"{n / 1e6:.0f} MB ({n / 2**20:.0f} MiB)"


def _held(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f" (the blobs it holds: {ratio:.4f}x; the rest is its meta file and tar framing)"


def evaluate_targets(n: Mapping[str, float | None]) -> list[Target]:
    """Judge the medians against the issues' targets.

    Keys of `n` (any may be missing or None): raw_size, raw_save_s, raw_load_s,
    raw_peak_rss (bytes, the largest of save and load), archive_size, archive_save_s,
    oci_load_s, incr_size, incr_blob_bytes (what its meta lists), new_v2_bytes,
    dedup_size, dedup_save_s, dedup_load_s, dedup_peak_rss (bytes), dedup_incr_size.
    """
    get = n.get
    mb = 1e6
    return [
        _judge(
            "full bundle ≤ 1/3 of the docker-save|gzip total",
            _ratio(get("raw_size"), get("archive_size")),
            lambda r: r <= 1 / 3,
            lambda r: f"{r:.3f}x",
        ),
        _judge(
            "save ≥ 2x faster than docker-save|gzip",
            _ratio(get("archive_save_s"), get("raw_save_s")),
            lambda r: r >= 2,
            lambda r: f"{r:.1f}x faster",
        ),
        _judge(
            "load no slower than skopeo from an OCI layout",
            _ratio(get("raw_load_s"), get("oci_load_s")),
            lambda r: r <= 1,
            lambda r: f"{r:.2f}x its time",
        ),
        _judge(
            "incremental bundle ≤ the blobs new in v2",
            _ratio(get("incr_size"), get("new_v2_bytes")),
            lambda r: r <= 1,
            lambda r: f"{r:.4f}x" + _held(_ratio(get("incr_blob_bytes"), get("new_v2_bytes"))),
        ),
        _judge(
            "peak RSS < 150 MB (save and load)",
            get("raw_peak_rss"),
            lambda b: b < 150 * mb,
            _mb_and_mib,
        ),
        _judge(
            "dedup bundle ≤ 0.55x plain",
            _ratio(get("dedup_size"), get("raw_size")),
            lambda r: r <= 0.55,
            lambda r: f"{r:.3f}x",
        ),
        _judge(
            "dedup save ≤ 2.5x plain save time",
            _ratio(get("dedup_save_s"), get("raw_save_s")),
            lambda r: r <= 2.5,
            lambda r: f"{r:.2f}x",
        ),
        _judge(
            "dedup load ≤ 2x plain load time",
            _ratio(get("dedup_load_s"), get("raw_load_s")),
            lambda r: r <= 2,
            lambda r: f"{r:.2f}x",
        ),
        _judge(
            "dedup peak RSS < 300 MB",
            get("dedup_peak_rss"),
            lambda b: b < 300 * mb,
            _mb_and_mib,
        ),
        _judge(
            "file-level incremental ≤ 0.3x layer-level",
            _ratio(get("dedup_incr_size"), get("incr_size")),
            lambda r: r <= 0.3,
            lambda r: f"{r:.3f}x",
        ),
    ]


def met_label(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[met]


# ---------------------------------------------------------------------------------------
# tables


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table with columns padded to their widest cell; `|` in cells escaped."""
    headers = [h.replace("|", "\\|") for h in headers]
    cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, table has {len(headers)} columns")
    widths = [max(len(x) for x in col) for col in zip(headers, *cells, strict=True)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)
