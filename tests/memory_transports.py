"""In-memory Source and Destination for engine unit tests, with scripted faults.

They implement the transport interface exactly, so the engine under test cannot tell them
from a registry; integration tests use real registries.
"""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from contextlib import contextmanager

from transship.errors import NotFoundError, TransientError
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor
from transship.oci.digest import DigestVerifier, digest_bytes
from transship.oci.manifest import RawManifest
from transship.transports.base import Destination, Source


class MemoryStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], RawManifest] = {}  # (repo, tag or digest)
        self.repo_blobs: dict[str, set[str]] = {}

    def add_blob(self, repo: str, data: bytes, media_type: str = mt.OCI_LAYER_GZIP) -> Descriptor:
        digest = digest_bytes(data)
        self.blobs[digest] = data
        self.repo_blobs.setdefault(repo, set()).add(digest)
        return Descriptor(media_type, digest, len(data))

    def add_image(
        self, repo: str, tag: str, layers: list[bytes], platform: dict | None = None
    ) -> RawManifest:
        config = json.dumps(
            {
                "architecture": (platform or {}).get("architecture", "amd64"),
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
                "config": {"Labels": {"repo": repo, "tag": tag}},
            }
        ).encode()
        config_desc = self.add_blob(repo, config, mt.OCI_CONFIG)
        layer_descs = [self.add_blob(repo, layer) for layer in layers]
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config_desc.to_json(),
            "layers": [d.to_json() for d in layer_descs],
        }
        raw = RawManifest(json.dumps(doc).encode(), mt.OCI_MANIFEST)
        self.manifests[(repo, tag)] = raw
        self.manifests[(repo, raw.digest)] = raw
        return raw

    def add_index(
        self, repo: str, tag: str, children: list[tuple[RawManifest, dict]]
    ) -> RawManifest:
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [{**c.descriptor.to_json(), "platform": p} for c, p in children],
        }
        raw = RawManifest(json.dumps(doc).encode(), mt.OCI_INDEX)
        self.manifests[(repo, tag)] = raw
        self.manifests[(repo, raw.digest)] = raw
        return raw


class MemorySource(Source):
    name = "memory"

    def __init__(self, store: MemoryStore, break_after: dict[str, list[int]] | None = None):
        self.store = store
        # digest -> list of byte offsets at which successive opens break off
        self.break_after = {k: list(v) for k, v in (break_after or {}).items()}
        self.opens: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def get_manifest(self, repository: str, reference: str) -> RawManifest:
        try:
            return self.store.manifests[(repository, reference)]
        except KeyError:
            raise NotFoundError(f"manifest {repository}:{reference} not found") from None

    @contextmanager
    def open_blob(self, repository: str, desc: Descriptor, offset: int = 0):
        data = self.store.blobs[desc.digest]
        with self.lock:
            self.opens.append((desc.digest, offset))
            breaks = self.break_after.get(desc.digest)
            cut = breaks.pop(0) if breaks else None
        yield _BreakingStream(data[offset:], None if cut is None else max(0, cut - offset))


class _BreakingStream:
    def __init__(self, data: bytes, cut: int | None):
        self._io = io.BytesIO(data)
        self._cut = cut

    def read(self, n: int = -1) -> bytes:
        if self._cut is not None and self._io.tell() >= self._cut:
            raise TransientError("connection reset (scripted)")
        if self._cut is not None:
            n = min(n if n >= 0 else 1 << 30, self._cut - self._io.tell())
        return self._io.read(min(n, 4096) if n >= 0 else -1)


class MemoryDestination(Destination):
    name = "memory-dst"

    def __init__(self, store: MemoryStore | None = None, fail_puts: dict[str, int] | None = None):
        self.store = store or MemoryStore()
        self.fail_puts = dict(fail_puts or {})  # digest -> how many puts fail first
        self.puts: Counter[str] = Counter()
        self.mounts: list[tuple[str, str, str]] = []
        self.manifest_puts: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.committed = self.aborted = False

    def has_blob(self, repository: str, desc: Descriptor) -> bool:
        return desc.digest in self.store.repo_blobs.get(repository, set())

    def put_blob(self, repository, desc, chunks, progress=None) -> None:
        verifier = DigestVerifier(desc.digest, desc.size)
        parts = []
        with self.lock:
            self.puts[desc.digest] += 1
            failing = self.fail_puts.get(desc.digest, 0)
            if failing:
                self.fail_puts[desc.digest] = failing - 1
        for i, chunk in enumerate(chunks):
            if failing and i == 1:
                raise TransientError("503 from destination (scripted)")
            verifier.update(chunk)
            parts.append(chunk)
            if progress:
                progress(len(chunk))
        if failing:
            raise TransientError("503 from destination (scripted)")
        verifier.verify()
        with self.lock:
            self.store.blobs[desc.digest] = b"".join(parts)
            self.store.repo_blobs.setdefault(repository, set()).add(desc.digest)

    def mount_blob(self, repository, desc, from_repository) -> bool:
        with self.lock:
            if desc.digest in self.store.repo_blobs.get(from_repository, set()):
                self.store.repo_blobs.setdefault(repository, set()).add(desc.digest)
                self.mounts.append((repository, desc.digest, from_repository))
                return True
        return False

    def has_manifest(self, repository, reference, digest) -> bool:
        found = self.store.manifests.get((repository, reference))
        return found is not None and found.digest == digest

    def put_manifest(self, repository, reference, manifest) -> None:
        parsed = manifest.parse()
        needed = [d.digest for d in getattr(parsed, "blobs", ())]
        needed += [d.digest for d in getattr(parsed, "manifests", ())]
        with self.lock:
            for digest in needed:
                present = (
                    digest in self.store.repo_blobs.get(repository, set())
                    or (repository, digest) in self.store.manifests
                )
                if not present:
                    raise AssertionError(f"manifest pushed before {digest} was in {repository}")
            self.store.manifests[(repository, reference)] = manifest
            self.store.manifests[(repository, manifest.digest)] = manifest
            self.manifest_puts.append((repository, reference))

    def commit(self) -> None:
        self.committed = True

    def abort(self) -> None:
        self.aborted = True
