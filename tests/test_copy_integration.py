"""`transship copy` against real registries, checked with skopeo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.images import OCILayout, push_image, seeded_bytes, skopeo_inspect
from tests.support.registry import RegistryServer

SAMPLES = ["tiny", "oci-single", "docker-single", "oci-multi", "docker-multi", "zstd"]


def transship(
    *args: str,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "transship", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_done(stdout: str) -> dict:
    done = [e for e in json_events(stdout) if e["event"] == "RunDone"]
    assert done, stdout
    return done[-1]


def raw_manifest(registry: RegistryServer, reference: str) -> bytes:
    code, out, err = skopeo_inspect(registry, reference, raw=True)
    assert code == 0, err
    return out


def assert_same_image(
    src: RegistryServer, src_ref: str, dst: RegistryServer, dst_ref: str, pushed
) -> None:
    assert raw_manifest(dst, dst_ref) == raw_manifest(src, src_ref)
    repo = dst_ref.split(":")[0]
    for digest in pushed.manifests:  # children of an index, by digest
        assert raw_manifest(dst, f"{repo}@{digest}") == raw_manifest(
            src, f"{src_ref.split(':')[0]}@{digest}"
        )


def write_config(tmp_path: Path, registries: dict) -> Path:
    path = tmp_path / "transship.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"registries": registries, "maxconn": 4, "retries": 3}))
    return path


def test_copy_list_preserves_every_manifest_and_second_run_sends_nothing(
    source_registry, fresh_registry, tmp_path
):
    target = fresh_registry()
    images = tmp_path / "images.txt"
    images.write_text("# all samples\n" + "\n".join(f"samples/{n}:v1" for n in SAMPLES) + "\n")
    cfg = write_config(
        tmp_path,
        {"src": {"url": f"http://{source_registry.host}"}, "dst": {"url": f"http://{target.host}"}},
    )
    first = transship(
        "copy",
        "--config",
        str(cfg),
        "--from",
        "src",
        "--to",
        "dst",
        "--list",
        str(images),
        "--json",
    )
    assert first.returncode == 0, first.stderr + first.stdout
    done = run_done(first.stdout)
    assert done["ok"] == len(SAMPLES) and done["failed"] == 0
    # the base layer is shared by 4 repositories: sent once, mounted into the others
    assert done["blobs_mounted"] >= 3
    for name in SAMPLES:
        assert_same_image(
            source_registry.server,
            f"samples/{name}:v1",
            target,
            f"samples/{name}:v1",
            source_registry[name],
        )

    second = transship(
        "copy",
        "--config",
        str(cfg),
        "--from",
        "src",
        "--to",
        "dst",
        "--list",
        str(images),
        "--json",
    )
    assert second.returncode == 0, second.stderr
    again = run_done(second.stdout)
    assert again["blobs_copied"] == 0 and again["bytes_sent"] == 0 and again["blobs_mounted"] == 0
    assert again["images_up_to_date"] == len(SAMPLES)  # only manifests were looked at


def test_single_image_copy_with_rename_and_summary(source_registry, fresh_registry):
    target = fresh_registry()
    result = transship(
        "copy",
        f"docker://{source_registry['oci-single'].reference}",
        f"docker://{target.host}/renamed/app:2.0",
    )
    assert result.returncode == 0, result.stderr
    assert "images: 1 ok (0 already up to date), 0 failed, 0 invalid" in result.stdout
    assert raw_manifest(target, "renamed/app:2.0") == raw_manifest(
        source_registry.server, "samples/oci-single:v1"
    )


def test_list_renames_rewrite_invalid_lines_and_missing_images(
    source_registry, fresh_registry, tmp_path
):
    target = fresh_registry()
    cfg = write_config(
        tmp_path,
        {
            "src": {"url": f"http://{source_registry.host}"},
            "dst": {"url": f"http://{target.host}", "repository": "site/apps"},
        },
    )
    text = (
        "other.example.com/samples/tiny:v1\n"  # registry part replaced by --from
        "samples/zstd:v1 -> compressed/z:9\n"
        "samples/does-not-exist:v1\n"
        "Bad Reference!\n"
    )
    result = transship("copy", "--config", str(cfg), "--from", "src", "--to", "dst", stdin=text)
    assert result.returncode == 1
    assert raw_manifest(target, "site/apps/tiny:v1") == raw_manifest(
        source_registry.server, "samples/tiny:v1"
    )
    assert raw_manifest(target, "compressed/z:9") == raw_manifest(
        source_registry.server, "samples/zstd:v1"
    )
    assert "images: 2 ok (0 already up to date), 0 failed, 2 invalid" in result.stdout
    assert (
        "invalid: samples/does-not-exist:v1" in result.stdout
        and "manifest unknown" in result.stdout
    )
    assert "invalid: Bad Reference!" in result.stdout


def test_check_resolves_without_copying(source_registry, fresh_registry, tmp_path):
    target = fresh_registry()
    text = "samples/tiny:v1\nsamples/oci-multi:v1 -> x/multi:1\nsamples/nope:v1\n"
    result = transship(
        "copy", "--check", "--from", source_registry.host, "--to", target.host, stdin=text
    )
    assert result.returncode == 1
    assert (
        f"{source_registry.host}/samples/tiny:v1 -> {target.host}/samples/tiny:v1" in result.stdout
    )
    assert f"-> {target.host}/x/multi:1" in result.stdout
    assert "invalid: samples/nope:v1" in result.stdout
    assert not list((target.storage_dir).rglob("_manifests"))  # nothing pushed


def test_platform_selection_says_the_index_changed(source_registry, fresh_registry):
    target = fresh_registry()
    result = transship(
        "copy",
        "--platform",
        "linux/arm64",
        f"docker://{source_registry['oci-multi'].reference}",
        f"docker://{target.host}/arm/only:1",
    )
    assert result.returncode == 0, result.stderr
    assert "instead of the index" in result.stdout
    pushed = json.loads(raw_manifest(target, "arm/only:1"))
    assert pushed["config"] and "manifests" not in pushed


def test_basic_auth_with_config_and_wrong_password(source_registry, fresh_registry, tmp_path):
    target = fresh_registry(auth="basic")
    good = write_config(
        tmp_path,
        {
            "dst": {
                "url": f"http://{target.host}",
                "user": target.username,
                "password_env": "DST_PW",
            }
        },
    )
    result = transship(
        "copy",
        "--config",
        str(good),
        f"docker://{source_registry['tiny'].reference}",
        f"docker://{target.host}/auth/tiny:v1",
        env={"DST_PW": target.password},
    )
    assert result.returncode == 0, result.stderr
    assert raw_manifest(target, "auth/tiny:v1") == raw_manifest(
        source_registry.server, "samples/tiny:v1"
    )

    (tmp_path / "bad").mkdir()
    bad = write_config(
        tmp_path / "bad",
        {
            "dst": {
                "url": f"http://{target.host}",
                "user": target.username,
                "password": "Not-The-Password-123",
            }
        },
    )
    result = transship(
        "copy",
        "--config",
        str(bad),
        f"docker://{source_registry['tiny'].reference}",
        f"docker://{target.host}/auth/tiny:v2",
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "was refused" in output or "not authorized" in output
    assert "Not-The-Password-123" not in output


def test_token_auth_caches_tokens_per_scope(source_registry, token_registry, tmp_path):
    from tests.conftest import TOKEN_PASSWORD, TOKEN_USER

    cfg = write_config(
        tmp_path,
        {
            "dst": {
                "url": f"http://{token_registry.host}",
                "user": TOKEN_USER,
                "password": TOKEN_PASSWORD,
            }
        },
    )
    result = transship(
        "copy",
        "--config",
        str(cfg),
        f"docker://{source_registry['oci-multi'].reference}",
        f"docker://{token_registry.host}/tok/multi:v1",
    )
    assert result.returncode == 0, result.stderr
    # dozens of requests, but only a handful of token fetches (one per scope, cached)
    fetched = [r.scopes for r in token_registry.token_issuer.requests]
    assert 1 <= len(fetched) <= 3, fetched
    code, out, err = skopeo_inspect(token_registry, "tok/multi:v1", raw=True)
    assert code == 0 and out == raw_manifest(source_registry.server, "samples/oci-multi:v1")

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"registries: {{dst: {{url: 'http://{token_registry.host}', user: {TOKEN_USER}, password: WrongPw-999}}}}\n"
    )
    result = transship(
        "copy",
        "--config",
        str(bad),
        f"docker://{source_registry['tiny'].reference}",
        f"docker://{token_registry.host}/tok/tiny:v1",
    )
    assert result.returncode == 1
    assert (
        "refused" in result.stdout + result.stderr
        and "WrongPw-999" not in result.stdout + result.stderr
    )


def test_tls_needs_the_ca_or_skip_verify(source_registry, tls_registry, tmp_path):
    src = f"docker://{source_registry['tiny'].reference}"
    no_ca = transship("copy", src, f"docker://{tls_registry.host}/tls/tiny:v1")
    assert no_ca.returncode == 1
    assert "certificate" in (no_ca.stdout + no_ca.stderr).lower()

    cfg = write_config(
        tmp_path,
        {"dst": {"url": f"https://{tls_registry.host}", "ca_file": str(tls_registry.ca_path)}},
    )
    with_ca = transship(
        "copy", "--config", str(cfg), src, f"docker://{tls_registry.host}/tls/tiny:v1"
    )
    assert with_ca.returncode == 0, with_ca.stderr + with_ca.stdout
    skip = transship("copy", "--skip-tls-verify", src, f"docker://{tls_registry.host}/tls/tiny:v2")
    assert skip.returncode == 0, skip.stderr + skip.stdout
    assert raw_manifest(tls_registry, "tls/tiny:v2") == raw_manifest(
        source_registry.server, "samples/tiny:v1"
    )


def test_flaky_link_still_copies_every_digest(
    source_registry, fresh_registry, fault_proxy, tmp_path
):
    target = fresh_registry()
    cfg = tmp_path / "transship.yaml"
    cfg.write_text("retries: 8\nretry_backoff: 0.05\n")
    proxy = fault_proxy(target, seed=7, error_rate=0.15, reset_rate=0.15)
    src_proxy = fault_proxy(source_registry.server, seed=11, error_rate=0.1, reset_rate=0.2)
    text = "\n".join(f"samples/{n}:v1" for n in ("oci-single", "docker-multi", "zstd"))
    result = transship(
        "copy", "--from", src_proxy.host, "--to", proxy.host, "--retries", "8", "--json", stdin=text
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert proxy.total_faults + src_proxy.total_faults > 0
    assert any(e["event"] == "BlobRetry" for e in json_events(result.stdout))
    for name in ("oci-single", "docker-multi", "zstd"):
        assert_same_image(
            source_registry.server,
            f"samples/{name}:v1",
            target,
            f"samples/{name}:v1",
            source_registry[name],
        )


def test_killed_copy_resumes_and_sends_only_what_is_missing(
    fresh_registry, tmp_path, shared_layers
):
    source = fresh_registry()
    target = fresh_registry()
    layout = OCILayout.create(tmp_path / "big")
    layers = [
        layout.add_layer({f"f{i}.bin": seeded_bytes(f"kill-{i}", 3_000_000)}, compression="none")
        for i in range(4)
    ]
    layers.append(layout.add_layer_file(shared_layers / "layer-jars.tar.go-stdlib-default.gz"))
    from tests.support.images import Platform

    image = layout.add_image(layers, Platform("linux", "amd64"))
    layout.tag(image, "big")
    push_image(layout, "big", source, "big/app:1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "transship",
            "copy",
            "--maxconn",
            "1",
            "--json",
            f"docker://{source.host}/big/app:1",
            f"docker://{target.host}/big/app:1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    copied_before_kill = 0
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "BlobDone" and event["how"] == "copied":
            copied_before_kill += 1
            if copied_before_kill == 2:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert copied_before_kill == 2
    rerun = transship(
        "copy", "--json", f"docker://{source.host}/big/app:1", f"docker://{target.host}/big/app:1"
    )
    assert rerun.returncode == 0, rerun.stderr
    done = run_done(rerun.stdout)
    assert done["blobs_skipped"] >= 2
    assert done["blobs_copied"] == len(layers) + 1 - done["blobs_skipped"]
    assert raw_manifest(target, "big/app:1") == raw_manifest(source, "big/app:1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["copy", "--from", "nosuchname", "--to", "127.0.0.1:1"],
            "unknown registry name 'nosuchname'",
        ),
        (["copy", "docker://127.0.0.1:1/a/b:1", "docker://127.0.0.1:2/a/b:1"], "unreachable"),
        (
            ["copy", "docker://UPPER/Case:1", "docker://127.0.0.1:2/a/b:1"],
            "invalid image reference",
        ),
    ],
)
def test_bad_input_gives_one_clear_line(args, message):
    result = transship(*args, stdin="a/b:1\n")
    assert result.returncode in (1, 2)
    output = (result.stdout + result.stderr).strip()
    assert message in output
    assert "Traceback" not in output
