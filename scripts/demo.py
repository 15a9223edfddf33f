"""The end-to-end demo behind `make demo`: two local registries, a sample image, then
copy, save, inspect, load and analyze with transship, checking digests at each step.

Everything runs on 127.0.0.1 in a temporary folder and is removed at the end.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Registry  # noqa: E402

JAR_DIRS = [Path("/usr/share/java"), Path("/usr/share/maven/lib")]


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def run(*args: str) -> str:
    print("$ transship " + " ".join(args), flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "transship", *args], capture_output=True, text=True
    )
    print(result.stdout.rstrip())
    if result.returncode != 0:
        print(result.stderr.rstrip(), file=sys.stderr)
        raise SystemExit(f"demo failed at: transship {' '.join(args)}")
    return result.stdout


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzipped tar of `files` (fixed metadata) and its diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, 6, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


def build_sample_layout(path: Path) -> None:
    """An OCI layout with one image: a layer of real jars found on this machine and an app
    layer; so the demo needs no image from the internet."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    jars = sorted(p for d in JAR_DIRS if d.is_dir() for p in d.glob("*.jar") if not p.is_symlink())[
        :40
    ]
    libs = {f"app/lib/{p.name}": p.read_bytes() for p in jars} or {
        "app/lib/placeholder.txt": b"no jars here\n"
    }
    app = {"app/app.properties": b"greeting=hello from transship\n", "app/VERSION": b"1.0.0\n"}
    layers = [_layer(libs), _layer(app)]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["java", "-cp", "/app/lib/*", "Main"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in layers]},
            "history": [{"created_by": "COPY lib/ /app/lib/"}, {"created_by": "COPY app/ /app/"}],
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(data)}
                for data, _ in layers
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **put(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "demo/app:1.0"},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def digest_of(registry: Registry, image: str) -> str:
    out = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.address}/{image}",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return "sha256:" + hashlib.sha256(out).hexdigest()


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="transship-demo-") as tmp,
        Registry() as company,
        Registry() as site,
    ):
        work = Path(tmp)
        step(
            f"two registries on loopback: 'company' at {company.address}, 'site' at {site.address}"
        )
        (work / "transship.yaml").write_text(
            f"registries:\n  company: {{url: 'http://{company.address}'}}\n  site: {{url: 'http://{site.address}'}}\n"
        )
        config = ["--config", str(work / "transship.yaml")]
        build_sample_layout(work / "layout")

        step("import a sample image (OCI layout on disk) into the company registry")
        run(
            "copy",
            f"oci:{work / 'layout'}:demo/app:1.0",
            f"docker://{company.address}/demo/app:1.0",
        )

        step("copy registry to registry (direct mode), then again: the second run sends nothing")
        (work / "images.txt").write_text("demo/app:1.0\ndemo/app:1.0 -> demo/app-renamed:1.0\n")
        run(
            "copy", *config, "--from", "company", "--to", "site", "--list", str(work / "images.txt")
        )
        run(
            "copy", *config, "--from", "company", "--to", "site", "--list", str(work / "images.txt")
        )
        same = digest_of(company, "demo/app:1.0") == digest_of(site, "demo/app:1.0")
        print(f"digest unchanged after copy: {same}")

        step("offline: save a bundle, inspect it, load it into the site registry under a new name")
        out = run("save", *config, "--from", "company", "-o", str(work / "bundles"), "demo/app:1.0")
        meta = next(
            line.split("bundle written: ", 1)[1]
            for line in out.splitlines()
            if "bundle written: " in line
        )
        run("inspect", meta)
        run("load", *config, meta, "--to", "site", "--map", "demo/app:1.0 -> offline/app:1.0")
        same &= digest_of(company, "demo/app:1.0") == digest_of(site, "offline/app:1.0")
        print(f"digest unchanged after save and load: {same}")

        step("why is the image this big?")
        run("analyze", f"docker://{site.address}/offline/app:1.0")
        return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
