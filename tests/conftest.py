"""Shared fixtures: real registries (plain, basic auth, token auth, TLS) on 127.0.0.1.

Tests that use a registry fixture are marked `integration` automatically, so
`pytest -m "not integration"` runs only the unit tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.images import OCILayout
from tests.support.pki import CertificateAuthority, ServerCertificate, TokenSigningKey
from tests.support.registry import RegistryServer
from tests.support.sample_images import (
    SHARED_LAYERS_DIR,
    SampleImages,
    SeededRegistry,
    build_sample_images,
)
from tests.support.token_issuer import TokenIssuer

BASIC_USER = "alice"
BASIC_PASSWORD = "wonder-land-42"
TOKEN_USER = "tokenuser"
TOKEN_PASSWORD = "token-pass-42"


# Fixtures that start servers or need system tools; tests using them get the marker.
INTEGRATION_FIXTURES = {
    "registry",
    "registry2",
    "fresh_registry",
    "basic_auth_registry",
    "token_registry",
    "tls_registry",
    "fault_proxy",
    "source_registry",
    "registry_session_factory",
}


@pytest.fixture(autouse=True)
def private_user_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test (and the commands it runs) gets an empty ~/.cache: nothing a test
    leaves there (remembered gzip recipes) changes what another one sees."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def require_tools(*tools: str) -> None:
    """Skip when a system tool is missing, but fail in CI, where system.sh must have run."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    message = f"missing {', '.join(missing)} (run tests/support/system.sh)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# -- key material ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PKIMaterial:
    ca: CertificateAuthority
    server_cert: ServerCertificate  # for 127.0.0.1 and localhost, signed by `ca`
    token_key: TokenSigningKey


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKIMaterial:
    base = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create(base / "ca")
    return PKIMaterial(
        ca=ca,
        server_cert=ca.issue_server_certificate(base / "server"),
        token_key=TokenSigningKey.create(base / "token"),
    )


# -- registries --------------------------------------------------------------------------------
RegistryFactory = Callable[..., RegistryServer]


def _make_registry(
    workdir: Path,
    pki: PKIMaterial,
    *,
    auth: str | None = None,
    tls: bool = False,
    token_options: dict[str, Any] | None = None,
    **server_options: Any,
) -> RegistryServer:
    """auth: None, "basic" or "token"; token_options go to TokenIssuer (expires_in, ...)."""
    require_tools("docker-registry")
    if auth == "basic":
        server_options["basic_auth"] = (BASIC_USER, BASIC_PASSWORD)
        require_tools("htpasswd")
    elif auth == "token":
        options = {"users": {TOKEN_USER: TOKEN_PASSWORD}, **(token_options or {})}
        server_options["token_issuer"] = TokenIssuer(pki.token_key, **options)
    elif auth is not None:
        raise ValueError(f"unknown auth {auth!r}")
    if tls:
        server_options["tls"] = pki.server_cert
    return RegistryServer(workdir, **server_options)


@pytest.fixture(scope="session")
def registry_session_factory(
    tmp_path_factory: pytest.TempPathFactory, pki: PKIMaterial
) -> Iterator[RegistryFactory]:
    servers: list[RegistryServer] = []

    def make(**options: Any) -> RegistryServer:
        server = _make_registry(tmp_path_factory.mktemp("registry"), pki, **options)
        servers.append(server)
        return server.start()

    yield make
    _stop_all(servers)


@pytest.fixture
def fresh_registry(
    tmp_path_factory: pytest.TempPathFactory, pki: PKIMaterial
) -> Iterator[RegistryFactory]:
    """Factory for empty registries that live for one test.

    fresh_registry() -> plain HTTP; fresh_registry(auth="basic"|"token", tls=True,
    readonly=True, token_options={"expires_in": 2}, extra_config={...}).
    """
    servers: list[RegistryServer] = []

    def make(**options: Any) -> RegistryServer:
        server = _make_registry(tmp_path_factory.mktemp("fresh-registry"), pki, **options)
        servers.append(server)
        return server.start()

    yield make
    _stop_all(servers)


def _stop_all(servers: list[RegistryServer]) -> None:
    for server in servers:
        server.stop()
        if server.token_issuer is not None:
            server.token_issuer.stop()


@pytest.fixture(scope="session")
def registry(registry_session_factory: RegistryFactory) -> RegistryServer:
    """Plain HTTP registry without auth, shared by the whole session."""
    return registry_session_factory()


@pytest.fixture(scope="session")
def registry2(registry_session_factory: RegistryFactory) -> RegistryServer:
    """A second plain registry (copy destination), shared by the whole session."""
    return registry_session_factory()


@pytest.fixture(scope="session")
def basic_auth_registry(registry_session_factory: RegistryFactory) -> RegistryServer:
    """HTTP basic auth (htpasswd, bcrypt); .username / .password are BASIC_USER/PASSWORD."""
    return registry_session_factory(auth="basic")


@pytest.fixture(scope="session")
def tls_registry(registry_session_factory: RegistryFactory) -> RegistryServer:
    """HTTPS with a cert from the session CA; trust .ca_path (or .cert_dir for skopeo)."""
    return registry_session_factory(tls=True)


@pytest.fixture
def token_registry(fresh_registry: RegistryFactory) -> RegistryServer:
    """Bearer-token auth, per test so the issuer's counters start at zero.

    .token_issuer counts requests (request_count, count_by_scope(), requests).
    """
    return fresh_registry(auth="token")


# -- fault injection -----------------------------------------------------------------------------
@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """Factory: fault_proxy(registry, seed=0, error_rate=..., reset_rate=..., plan=[...]).

    Returns a started FaultProxy in front of a plain-HTTP registry; use proxy.url / .host
    instead of the registry's. Stopped at the end of the test.
    """
    proxies: list[FaultProxy] = []

    def make(target: RegistryServer, **options: Any) -> FaultProxy:
        if target.tls:
            raise ValueError("the fault proxy forwards plain HTTP only")
        proxy = FaultProxy("127.0.0.1", target.port, **options).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


# -- test images -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def shared_layers() -> Path:
    """../shared/fixtures/layers (real layers; see its README for digests)."""
    if not (SHARED_LAYERS_DIR / "README.md").is_file():
        message = f"shared layer fixtures not found at {SHARED_LAYERS_DIR}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_LAYERS_DIR


@pytest.fixture(scope="session")
def sample_images(tmp_path_factory: pytest.TempPathFactory) -> SampleImages:
    """The sample catalogue (tiny, oci-single, docker-single, oci-multi, docker-multi, zstd)
    as one OCI layout on disk; push with sample_images.push(registry, name, "repo:tag")."""
    return build_sample_images(tmp_path_factory.mktemp("samples") / "layout")


@pytest.fixture(scope="session")
def source_registry(
    registry_session_factory: RegistryFactory, sample_images: SampleImages
) -> SeededRegistry:
    """A dedicated plain registry holding every sample as samples/NAME:v1.

    source_registry["oci-multi"].reference -> "127.0.0.1:PORT/samples/oci-multi:v1";
    .digest, .manifests, .blobs give what a faithful copy must reproduce. Read-only by
    convention: tests must not push to or delete from it.
    """
    require_tools("skopeo")
    server = registry_session_factory()
    return SeededRegistry(server, sample_images.push_all(server))


@pytest.fixture
def image_layout(tmp_path: Path) -> Callable[[str], OCILayout]:
    """Factory: image_layout("name") -> an empty OCILayout under tmp_path."""

    def make(name: str = "layout") -> OCILayout:
        return OCILayout.create(tmp_path / name)

    return make
