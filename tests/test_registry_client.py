"""The registry client on its own: listings, blob streaming and resume, redirects, errors."""

from __future__ import annotations

import http.server
import threading

import pytest

from transship.errors import (
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    TransientError,
    UnsupportedError,
)
from transship.oci import mediatypes as mt
from transship.oci.descriptor import Descriptor
from transship.oci.digest import digest_bytes
from transship.oci.manifest import RawManifest
from transship.registry.client import RegistryClient, RegistryEndpoint


def client_for(server, **kwargs) -> RegistryClient:
    return RegistryClient(RegistryEndpoint(server.host, insecure=True), **kwargs)


def test_tags_are_paginated(fresh_registry, sample_images):
    registry = fresh_registry()
    for tag in ("a", "b", "c", "d", "e"):
        sample_images.push(registry, "tiny", f"paged/tiny:{tag}")
    client = client_for(registry)
    assert sorted(client.list_tags("paged/tiny", page_size=2)) == ["a", "b", "c", "d", "e"]
    assert "paged/tiny" in client.catalog(page_size=1)


def test_blob_upload_chunked_and_ranged_download(fresh_registry):
    registry = fresh_registry()
    client = client_for(registry)
    data = bytes(range(256)) * 1200  # 300 KiB
    desc = Descriptor(mt.OCI_LAYER, digest_bytes(data), len(data))
    sent = []
    client.upload_blob(
        "chunks/test",
        desc,
        [data[i : i + 10_000] for i in range(0, len(data), 10_000)],
        sent.append,
    )
    assert sum(sent) == len(data)
    assert client.head_blob("chunks/test", desc.digest) == len(data)
    with client.open_blob("chunks/test", desc.digest, offset=123_456) as stream:
        assert stream.read() == data[123_456:]
    assert client.head_blob("chunks/other", desc.digest) is None
    assert client.mount_blob("chunks/other", desc.digest, "chunks/test")
    assert client.head_blob("chunks/other", desc.digest) == len(data)


def test_upload_with_wrong_digest_is_refused_before_commit(fresh_registry):
    registry = fresh_registry()
    client = client_for(registry)
    data = b"x" * 1000
    desc = Descriptor(mt.OCI_LAYER, digest_bytes(b"something else"), len(data))
    with pytest.raises(DigestMismatchError):
        client.upload_blob("bad/digest", desc, [data])
    assert client.head_blob("bad/digest", desc.digest) is None


def test_manifest_by_digest_is_verified_and_schema1_refused(source_registry):
    client = client_for(source_registry.server)
    pushed = source_registry["oci-multi"]
    raw = client.get_manifest("samples/oci-multi", pushed.digest)
    assert raw.digest == pushed.digest and raw.media_type == mt.OCI_INDEX
    with pytest.raises(NotFoundError):
        client.get_manifest("samples/oci-multi", "sha256:" + "0" * 64)
    with pytest.raises(UnsupportedError, match="schema 1"):
        RawManifest(b'{"schemaVersion": 1, "name": "x"}', mt.DOCKER_SCHEMA1).parse()


def test_unreachable_registry_is_one_clear_line():
    client = RegistryClient(RegistryEndpoint("127.0.0.1:1", insecure=True), timeout=3)
    with pytest.raises(RegistryError) as e:
        client.get_manifest("a/b", "1")
    assert "127.0.0.1:1: unreachable" in str(e.value) and "\n" not in str(e.value)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Serves /v2/ and redirects blob GETs to a second server, which records headers."""

    storage_port = 0
    seen: list[dict] = []
    payload = b"redirected blob content"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif "/blobs/" in self.path:
            self.send_response(307)
            self.send_header("Location", f"http://localhost:{self.storage_port}/storage/blob")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            _Recorder.seen.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload)


def test_redirect_to_storage_drops_the_authorization_header():
    from transship.registry.credentials import Credentials

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _Recorder.storage_port = servers[1].server_address[1]
        _Recorder.seen = []
        endpoint = RegistryEndpoint(
            f"127.0.0.1:{servers[0].server_address[1]}",
            insecure=True,
            credentials=Credentials("user", "Secret-Pw-1"),
        )
        client = RegistryClient(endpoint)
        client._auth._basic = True  # as after a Basic challenge: credentials go on every request
        digest = digest_bytes(_Recorder.payload)
        with client.open_blob("any/repo", digest) as stream:
            assert stream.read() == _Recorder.payload
        assert _Recorder.seen and all(
            "Authorization" not in h and "authorization" not in h for h in _Recorder.seen
        )
    finally:
        for server in servers:
            server.shutdown()


def test_broken_upload_fails_cleanly_and_a_new_upload_succeeds(fresh_registry, fault_proxy):
    registry = fresh_registry()
    proxy = fault_proxy(registry, seed=3, plan=["reset"], methods=["PATCH"])
    data = bytes(range(256)) * 12_000  # 3 MB: streamed in one PATCH
    desc = Descriptor(mt.OCI_LAYER, digest_bytes(data), len(data))
    client = RegistryClient(RegistryEndpoint(proxy.host, insecure=True))
    with pytest.raises(TransientError):
        client.upload_blob("broken/test", desc, [data])
    assert client.head_blob("broken/test", desc.digest) is None  # nothing half-written visible
    client.upload_blob(
        "broken/test", desc, [data[i : i + 65536] for i in range(0, len(data), 65536)]
    )
    with client_for(registry).open_blob("broken/test", desc.digest) as stream:
        assert stream.read() == data
