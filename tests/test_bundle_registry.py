"""Bundles between real registries through the copy engine: save, load, and the checks that
keep a damaged or out-of-order bundle from pushing anything."""

import httpx
import pytest

from tests.bundle_helpers import flip_byte
from tests.support.images import skopeo_inspect
from transship.bundle.chain import MissingParentError
from transship.bundle.reader import BundleVerificationError
from transship.engine.copy import CopyJob, CopyOptions, copy_images
from transship.registry.client import RegistryClient, RegistryEndpoint
from transship.transports.bundle import BundleDestination, BundleSource
from transship.transports.registry import RegistryDestination, RegistrySource


def client(server) -> RegistryClient:
    return RegistryClient(RegistryEndpoint(host=server.host, insecure=True))


def jobs_for(names):
    return [CopyJob(n, f"samples/{n}", "v1", f"samples/{n}", "v1") for n in names]


def save_from(registry, names, meta_path, **options):
    dst = BundleDestination(meta_path, **options)
    summary = copy_images(
        RegistrySource(client(registry.server)), dst, jobs_for(names), CopyOptions(maxconn=3)
    )
    assert summary.ok == len(names), [r.error for r in summary.images]
    return dst


def load_into(meta_path, server):
    src = BundleSource(meta_path)
    dst = src.prepare_load(RegistryDestination(client(server)))
    jobs = [CopyJob(i.target, i.repository, i.tag, i.repository, i.tag) for i in src.images()]
    summary = copy_images(src, dst, jobs, CopyOptions(maxconn=3))
    assert summary.ok == len(jobs), [r.error for r in summary.images]


def catalog(server) -> list[str]:
    return httpx.get(f"{server.url}/v2/_catalog").json().get("repositories") or []


def test_save_from_a_registry_and_load_into_another(source_registry, fresh_registry, tmp_path):
    names = ["oci-single", "docker-single", "oci-multi", "docker-multi", "zstd"]
    save_from(source_registry, names, tmp_path / "b.meta.json", workers=3)
    target = fresh_registry()
    load_into(tmp_path / "b.meta.json", target)
    for name in names:
        code, raw, err = skopeo_inspect(target, f"samples/{name}:v1", raw=True)
        assert code == 0, err
        assert raw == source_registry[name].manifest.raw


def test_damaged_bundle_pushes_nothing(source_registry, fresh_registry, tmp_path):
    dst = save_from(source_registry, ["oci-single", "tiny"], tmp_path / "b.meta.json", workers=2)
    victim = tmp_path / dst.meta.data_files[0].name
    flip_byte(victim, victim.stat().st_size // 3)
    target = fresh_registry()
    with pytest.raises(BundleVerificationError, match=victim.name):
        load_into(tmp_path / "b.meta.json", target)
    assert catalog(target) == []


def test_incremental_bundle_needs_its_parent_first(source_registry, fresh_registry, tmp_path):
    v1 = save_from(source_registry, ["oci-single"], tmp_path / "v1.meta.json")
    save_from(
        source_registry,
        ["docker-single", "oci-multi"],
        tmp_path / "v2.meta.json",
        since=[v1.meta_path],
    )
    target = fresh_registry()
    with pytest.raises(MissingParentError, match=r"Load v1\.meta\.json first"):
        load_into(tmp_path / "v2.meta.json", target)
    assert catalog(target) == []
    load_into(tmp_path / "v1.meta.json", target)
    load_into(tmp_path / "v2.meta.json", target)
    for name in ("oci-single", "docker-single", "oci-multi"):
        code, raw, _ = skopeo_inspect(target, f"samples/{name}:v1", raw=True)
        assert code == 0 and raw == source_registry[name].manifest.raw
