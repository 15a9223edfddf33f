"""Self-tests of the integration-test infrastructure, using only httpx and skopeo."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import time

import httpx
import jwt
import pytest

from tests.conftest import (
    BASIC_PASSWORD,
    BASIC_USER,
    TOKEN_PASSWORD,
    TOKEN_USER,
    require_tools,
)
from tests.support.faultproxy import FaultProxy
from tests.support.images import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    child_images,
    skopeo_inspect,
)
from tests.support.pki import TokenSigningKey, libtrust_key_id
from tests.support.registry import RegistryServer
from tests.support.sample_images import SampleImages, SeededRegistry, build_sample_images


def _bearer_challenge(response: httpx.Response) -> dict[str, str]:
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


# -- plain -------------------------------------------------------------------------------------
def test_plain_registries_answer_and_are_distinct(
    registry: RegistryServer, registry2: RegistryServer
) -> None:
    assert registry.url.startswith("http://127.0.0.1:")
    assert registry.host != registry2.host
    assert registry.storage_dir != registry2.storage_dir
    for server in (registry, registry2):
        response = httpx.get(f"{server.url}/v2/")
        assert response.status_code == 200
        assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_fresh_registry_is_stopped_after_use(fresh_registry) -> None:
    server = fresh_registry()
    assert httpx.get(f"{server.url}/v2/_catalog").json() == {"repositories": []}
    server.stop()
    assert not server.running
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/v2/", timeout=2)


def test_registry_stores_blobs_in_its_storage_dir(registry: RegistryServer) -> None:
    data = b"hello blob"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=registry.url) as client:
        start = client.post("/v2/selftest/storage/blobs/uploads/")
        assert start.status_code == 202
        upload_url = httpx.URL(start.headers["location"]).copy_merge_params({"digest": digest})
        put = client.put(upload_url, content=data)
        assert put.status_code == 201
        assert client.get(f"/v2/selftest/storage/blobs/{digest}").content == data
    blob_file = registry.storage_dir / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:]
    assert (blob_file / "data").read_bytes() == data


# -- basic auth ------------------------------------------------------------------------------------
def test_basic_auth_registry_checks_password(basic_auth_registry: RegistryServer) -> None:
    url = f"{basic_auth_registry.url}/v2/"
    assert basic_auth_registry.credentials == (BASIC_USER, BASIC_PASSWORD)
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic ")
    assert httpx.get(url, auth=(BASIC_USER, BASIC_PASSWORD)).status_code == 200
    assert httpx.get(url, auth=(BASIC_USER, "wrong")).status_code == 401


# -- token auth ------------------------------------------------------------------------------------
def _fetch_token(challenge: dict[str, str], scope: str, auth: tuple[str, str]) -> httpx.Response:
    return httpx.get(
        challenge["realm"], params={"service": challenge["service"], "scope": scope}, auth=auth
    )


def test_token_registry_accepts_issued_token(token_registry: RegistryServer) -> None:
    issuer = token_registry.token_issuer
    assert issuer is not None
    challenge = _bearer_challenge(httpx.get(f"{token_registry.url}/v2/"))
    assert challenge["realm"] == issuer.realm
    assert challenge["service"] == issuer.service

    scope = "repository:selftest/token:pull"
    answer = _fetch_token(challenge, scope, (TOKEN_USER, TOKEN_PASSWORD))
    assert answer.status_code == 200
    body = answer.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == issuer.expires_in

    tags_url = f"{token_registry.url}/v2/selftest/token/tags/list"
    unauthenticated = httpx.get(tags_url)
    assert unauthenticated.status_code == 401
    assert _bearer_challenge(unauthenticated)["scope"] == scope
    # Authorized (the repository does not exist yet, so NAME_UNKNOWN rather than 401).
    authorized = httpx.get(tags_url, headers={"Authorization": f"Bearer {body['token']}"})
    assert authorized.status_code == 404
    assert authorized.json()["errors"][0]["code"] == "NAME_UNKNOWN"

    assert issuer.count_by_scope()[scope] == 1
    assert issuer.request_count == 1


def test_token_issuer_refuses_wrong_password(token_registry: RegistryServer) -> None:
    challenge = _bearer_challenge(httpx.get(f"{token_registry.url}/v2/"))
    refused = _fetch_token(challenge, "repository:x:pull", (TOKEN_USER, "wrong"))
    assert refused.status_code == 401
    assert token_registry.token_issuer.requests[-1].granted is False


def test_token_without_push_right_cannot_push(token_registry: RegistryServer) -> None:
    challenge = _bearer_challenge(httpx.get(f"{token_registry.url}/v2/"))
    token = _fetch_token(challenge, "repository:selftest/ro:pull", (TOKEN_USER, TOKEN_PASSWORD))
    response = httpx.post(
        f"{token_registry.url}/v2/selftest/ro/blobs/uploads/",
        headers={"Authorization": f"Bearer {token.json()['token']}"},
    )
    assert response.status_code == 401
    assert "push" in _bearer_challenge(response)["scope"]


@pytest.mark.parametrize("key_mode", ["kid", "x5c"])
def test_token_signing_modes_are_both_trusted(fresh_registry, key_mode: str) -> None:
    server = fresh_registry(auth="token", token_options={"key_mode": key_mode})
    challenge = _bearer_challenge(httpx.get(f"{server.url}/v2/"))
    token = _fetch_token(challenge, "", (TOKEN_USER, TOKEN_PASSWORD)).json()["token"]
    assert (
        httpx.get(f"{server.url}/v2/", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )


def test_short_lived_token_expires_at_the_registry(fresh_registry) -> None:
    server = fresh_registry(auth="token", token_options={"expires_in": 1})
    challenge = _bearer_challenge(httpx.get(f"{server.url}/v2/"))
    token = _fetch_token(challenge, "", (TOKEN_USER, TOKEN_PASSWORD)).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/v2/", headers=headers).status_code == 200
    time.sleep(2.1)  # the registry checks exp at one-second resolution
    assert httpx.get(f"{server.url}/v2/", headers=headers).status_code == 401


def test_libtrust_key_id_format(pki) -> None:
    key_id = libtrust_key_id(pki.token_key.key.public_key())
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", key_id)
    assert key_id == pki.token_key.key_id


# -- TLS -------------------------------------------------------------------------------------------
def test_tls_registry_needs_its_ca(tls_registry: RegistryServer) -> None:
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.ca_path is not None and tls_registry.ca_path.is_file()
    context = ssl.create_default_context(cafile=str(tls_registry.ca_path))
    assert httpx.get(f"{tls_registry.url}/v2/", verify=context).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_registry.url}/v2/")


def test_tls_certificate_also_valid_for_localhost(tls_registry: RegistryServer) -> None:
    url = f"https://localhost:{tls_registry.port}/v2/"
    assert httpx.get(url, verify=tls_registry.ssl_context()).status_code == 200


def test_tls_with_basic_auth(fresh_registry) -> None:
    server = fresh_registry(tls=True, auth="basic")
    url = f"{server.url}/v2/"
    context = server.ssl_context()
    assert httpx.get(url, verify=context).status_code == 401
    assert httpx.get(url, verify=context, auth=server.credentials).status_code == 200


def test_readonly_registry_refuses_uploads(fresh_registry) -> None:
    server = fresh_registry(readonly=True)
    response = httpx.post(f"{server.url}/v2/selftest/ro/blobs/uploads/")
    assert response.status_code == 405


def test_token_from_untrusted_key_is_refused(fresh_registry, tmp_path) -> None:
    server = fresh_registry(auth="token")
    challenge = _bearer_challenge(httpx.get(f"{server.url}/v2/"))
    server.token_issuer.signing_key = TokenSigningKey.create(tmp_path / "other-key")
    token = _fetch_token(challenge, "", (TOKEN_USER, TOKEN_PASSWORD)).json()["token"]
    response = httpx.get(f"{server.url}/v2/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


# -- fault proxy -----------------------------------------------------------------------------------
def _upload_blob(base_url: str, repository: str, data: bytes, chunked: bool = False) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=base_url) as client:
        start = client.post(f"/v2/{repository}/blobs/uploads/")
        assert start.status_code == 202
        location = httpx.URL(start.headers["location"])
        if chunked:  # a generator body goes out with Transfer-Encoding: chunked
            patch = client.patch(location, content=iter([data[:1000], data[1000:]]))
            assert patch.status_code == 202
            location = httpx.URL(patch.headers["location"])
            put = client.put(location.copy_merge_params({"digest": digest}))
        else:
            put = client.put(location.copy_merge_params({"digest": digest}), content=data)
        assert put.status_code == 201, put.text
    return digest


def _get_with_retries(client: httpx.Client, path: str, attempts: int) -> tuple[bytes, int]:
    """GET, resuming with Range after a cut and retrying after 5xx; (body, attempts used)."""
    received = bytearray()
    for attempt in range(1, attempts + 1):
        headers = {"Range": f"bytes={len(received)}-"} if received else {}
        try:
            with client.stream("GET", path, headers=headers) as response:
                if response.status_code >= 500:
                    continue
                assert response.status_code == (206 if received else 200)
                for chunk in response.iter_bytes():
                    received += chunk
            return bytes(received), attempt
        except httpx.TransportError:
            continue
    raise AssertionError(f"no complete download in {attempts} attempts")


def test_fault_proxy_passes_everything_when_quiet(registry: RegistryServer, fault_proxy) -> None:
    proxy = fault_proxy(registry)
    data = os.urandom(200_000)
    digest = _upload_blob(proxy.url, "selftest/quiet", data, chunked=True)
    with httpx.Client(base_url=proxy.url) as client:
        assert client.get(f"/v2/selftest/quiet/blobs/{digest}").content == data
        assert client.head(f"/v2/selftest/quiet/blobs/{digest}").status_code == 200
    assert proxy.total_faults == 0
    assert proxy.candidates_seen >= 5


def test_fault_proxy_injects_faults_and_retried_get_succeeds(
    registry: RegistryServer, fault_proxy
) -> None:
    data = os.urandom(1_500_000)
    digest = _upload_blob(registry.url, "selftest/faults", data)
    proxy = fault_proxy(registry, seed=11, error_rate=0.3, reset_rate=0.4)
    with httpx.Client(base_url=proxy.url) as client:
        for _ in range(3):
            body, attempts = _get_with_retries(client, f"/v2/selftest/faults/blobs/{digest}", 50)
            assert hashlib.sha256(body).hexdigest() == digest[7:]
            assert attempts >= 1
    assert proxy.faults["reset"] > 0
    assert proxy.faults["error_500"] + proxy.faults["error_503"] > 0
    cut_points = [e.bytes_before_cut for e in proxy.events if e.kind == "reset"]
    assert all(point is not None and 0 <= point < len(data) for point in cut_points)


def test_fault_proxy_is_deterministic_for_a_seed(registry: RegistryServer, fault_proxy) -> None:
    digest = _upload_blob(registry.url, "selftest/seeded", os.urandom(50_000))

    def run(seed: int) -> list[tuple[str, int | None]]:
        proxy = fault_proxy(registry, seed=seed, error_rate=0.25, reset_rate=0.25)
        with httpx.Client(base_url=proxy.url) as client:
            for _ in range(20):
                with contextlib.suppress(httpx.TransportError):
                    client.get(f"/v2/selftest/seeded/blobs/{digest}")
        return [(event.kind, event.bytes_before_cut) for event in proxy.events]

    first = run(5)
    assert first == run(5)
    assert first != run(6)
    assert len(first) > 0


def test_fault_proxy_plan_and_limits(registry: RegistryServer, fault_proxy) -> None:
    digest = _upload_blob(registry.url, "selftest/plan", os.urandom(10_000))
    proxy = fault_proxy(registry, plan=[503, "reset", "pass", 500])
    blob = f"/v2/selftest/plan/blobs/{digest}"
    with httpx.Client(base_url=proxy.url) as client:
        # Requests outside /blobs/ never count as candidates.
        assert client.get("/v2/").status_code == 200
        assert client.get(blob).status_code == 503
        with pytest.raises(httpx.TransportError):
            client.head(blob)  # reset before the answer
        assert client.get(blob).status_code == 200
        assert client.get(blob).status_code == 500
        assert client.get(blob).status_code == 200  # plan used up, rates are zero
    assert proxy.faults == {"error_503": 1, "reset": 1, "error_500": 1}
    assert proxy.requests_seen == 6 and proxy.candidates_seen == 5

    proxy.set_faults(error_rate=1.0, max_faults=2)
    with httpx.Client(base_url=proxy.url) as client:
        statuses = [client.get(blob).status_code for _ in range(4)]
    assert statuses[2:] == [200, 200]
    assert all(status in (500, 503) for status in statuses[:2])


def test_fault_proxy_cuts_uploads(registry: RegistryServer, fault_proxy) -> None:
    proxy = fault_proxy(registry, plan=["pass", "reset"], methods=["PATCH", "POST"])
    data = os.urandom(300_000)
    with pytest.raises(httpx.TransportError):
        _upload_blob(proxy.url, "selftest/upload", data, chunked=True)
    assert proxy.events[0].kind == "reset" and proxy.events[0].path.count("/uploads/") == 1
    assert proxy.events[0].bytes_before_cut < len(data)
    digest = _upload_blob(proxy.url, "selftest/upload", data)  # the retry gets through
    assert httpx.get(f"{registry.url}/v2/selftest/upload/blobs/{digest}").content == data


def test_fault_proxy_refuses_non_loopback_upstream() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("192.0.2.1", 5000)


# -- test images -----------------------------------------------------------------------------------
def _sha256(path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_sample_layout_is_a_valid_oci_layout(sample_images: SampleImages) -> None:
    layout = sample_images.layout
    assert json.loads((layout.path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout.path / "index.json").read_text())
    tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    assert set(tags) == set(sample_images.names)
    for blob_file in (layout.path / "blobs" / "sha256").iterdir():
        assert _sha256(blob_file) == "sha256:" + blob_file.name
    for name, built in sample_images.images.items():
        assert tags[name]["digest"] == built.digest
        for image in child_images(built):
            config = json.loads(layout.blob_path(image.config.digest).read_bytes())
            assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
            layered_history = [h for h in config["history"] if not h.get("empty_layer")]
            assert len(layered_history) == len(image.layers)
            assert config["architecture"] == image.platform.architecture
            manifest = image.manifest.json
            assert [d["digest"] for d in manifest["layers"]] == [lay.digest for lay in image.layers]


def test_sample_images_have_the_promised_shapes(sample_images: SampleImages) -> None:
    assert sample_images["oci-multi"].media_type == OCI_INDEX
    assert len(child_images(sample_images["oci-multi"])) == 3
    assert sample_images["docker-multi"].media_type == DOCKER_MANIFEST_LIST
    assert {i.media_type for i in child_images(sample_images["docker-multi"])} == {DOCKER_MANIFEST}
    assert sample_images["docker-single"].media_type == DOCKER_MANIFEST
    layer_types = {lay.media_type for lay in sample_images["zstd"].layers}
    assert layer_types == {OCI_LAYER, OCI_LAYER_ZSTD}
    # The base layer is shared by the single- and multi-platform images.
    shared = set(sample_images["oci-single"].blobs) & set(sample_images["docker-multi"].blobs)
    assert sample_images["oci-single"].layers[0].digest in shared


def test_sample_images_are_reproducible(sample_images: SampleImages, tmp_path) -> None:
    again = build_sample_images(tmp_path / "again")
    assert {n: b.digest for n, b in again.images.items()} == {
        n: b.digest for n, b in sample_images.images.items()
    }


def test_real_layer_diff_id_matches_fixture_readme(shared_layers, image_layout) -> None:
    layout = image_layout()
    layer = layout.add_layer_file(shared_layers / "layer-pax.tar.go-stdlib-default.gz")
    readme = (shared_layers / "README.md").read_text()
    assert layer.compression == "gzip"
    assert layer.digest[7:] in readme
    assert f"diff_id of every layer-pax.tar.*.gz: {layer.diff_id}" in readme


def test_umoci_reads_sample_oci_image(sample_images: SampleImages, tmp_path) -> None:
    require_tools("umoci")
    layout = sample_images.layout.path
    stat = subprocess.run(
        ["umoci", "stat", "--json", "--image", f"{layout}:oci-single"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert stat.returncode == 0, stat.stderr
    history = json.loads(stat.stdout)["history"]
    assert len([h for h in history if not h.get("empty_layer")]) == 3


def test_source_registry_serves_exact_manifests_and_blobs(source_registry: SeededRegistry) -> None:
    server = source_registry.server
    accept = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
    with httpx.Client(base_url=server.url, headers={"Accept": accept}) as client:
        for pushed in source_registry.images.values():
            rc, raw, err = skopeo_inspect(server, f"{pushed.repository}:{pushed.tag}", raw=True)
            assert rc == 0, err
            assert raw == pushed.manifest.raw
            for digest, manifest in pushed.manifests.items():
                response = client.get(f"/v2/{pushed.repository}/manifests/{digest}")
                assert response.status_code == 200
                assert response.content == manifest.raw
                assert response.headers["content-type"] == manifest.media_type
            for digest, size in pushed.blobs.items():
                head = client.head(f"/v2/{pushed.repository}/blobs/{digest}")
                assert head.status_code == 200
                assert int(head.headers["content-length"]) == size


# -- skopeo against every kind of registry -------------------------------------------------------
def _skopeo_inspect_with(server: RegistryServer, reference: str, *flags: str):
    return subprocess.run(
        ["skopeo", "inspect", *flags, f"docker://{server.host}/{reference}"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_skopeo_push_and_inspect_with_basic_auth(
    basic_auth_registry: RegistryServer, sample_images: SampleImages
) -> None:
    pushed = sample_images.push(basic_auth_registry, "tiny", "selftest/basic:v1")
    rc, raw, err = skopeo_inspect(basic_auth_registry, "selftest/basic:v1", raw=True)
    assert rc == 0, err
    assert raw == pushed.manifest.raw
    wrong = _skopeo_inspect_with(
        basic_auth_registry, "selftest/basic:v1", "--tls-verify=false", f"--creds={BASIC_USER}:no"
    )
    assert wrong.returncode != 0
    assert "unauthorized" in wrong.stderr.lower()


def test_skopeo_push_and_inspect_with_token_auth(
    token_registry: RegistryServer, sample_images: SampleImages
) -> None:
    issuer = token_registry.token_issuer
    pushed = sample_images.push(token_registry, "oci-multi", "selftest/token:v1")
    scopes = issuer.count_by_scope()
    assert any("selftest/token" in scope and "push" in scope for scope in scopes)
    rc, raw, err = skopeo_inspect(token_registry, "selftest/token:v1", raw=True)
    assert rc == 0, err
    assert raw == pushed.manifest.raw
    wrong = _skopeo_inspect_with(
        token_registry, "selftest/token:v1", "--tls-verify=false", f"--creds={TOKEN_USER}:no"
    )
    assert wrong.returncode != 0
    assert not issuer.requests[-1].granted


def test_skopeo_push_and_inspect_over_tls(
    tls_registry: RegistryServer, sample_images: SampleImages
) -> None:
    pushed = sample_images.push(tls_registry, "docker-single", "selftest/tls:v1")
    rc, raw, err = skopeo_inspect(tls_registry, "selftest/tls:v1", raw=True)
    assert rc == 0, err
    assert raw == pushed.manifest.raw
    untrusted = _skopeo_inspect_with(tls_registry, "selftest/tls:v1", "--tls-verify=true")
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr.lower()


def test_token_issuer_anonymous_gets_pull_only(fresh_registry) -> None:
    server = fresh_registry(auth="token", token_options={"allow_anonymous": True})
    challenge = _bearer_challenge(httpx.get(f"{server.url}/v2/"))
    answer = httpx.get(
        challenge["realm"],
        params={"service": challenge["service"], "scope": "repository:selftest/anon:pull,push"},
    )
    assert answer.status_code == 200
    claims = jwt.decode(answer.json()["token"], options={"verify_signature": False})
    assert claims["access"] == [
        {"type": "repository", "name": "selftest/anon", "actions": ["pull"]}
    ]
    assert server.token_issuer.requests[-1].username is None


def test_fault_proxy_head_error_keeps_connection_usable(
    registry: RegistryServer, fault_proxy
) -> None:
    digest = _upload_blob(registry.url, "selftest/head", b"head me")
    proxy = fault_proxy(registry, plan=[503])
    with httpx.Client(base_url=proxy.url) as client:
        assert client.head(f"/v2/selftest/head/blobs/{digest}").status_code == 503
        # Same keep-alive connection: a stray error body would corrupt this answer.
        assert client.get(f"/v2/selftest/head/blobs/{digest}").content == b"head me"
    assert proxy.faults == {"error_503": 1}


def test_fault_proxy_answers_tls_probe_at_once(registry: RegistryServer, fault_proxy) -> None:
    proxy = fault_proxy(registry)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    with raw, pytest.raises(ssl.SSLError):  # a hang would raise TimeoutError instead
        context.wrap_socket(raw, server_hostname="127.0.0.1")
