"""Decide the fleet: which files, jars and compressors make up which layers of which images.

The plan is a pure function of the seed, the scale and the files on this machine. Every
layer and generated jar gets a key: a digest of everything its bytes depend on (sources'
sizes and mtimes included), which is what the build cache is indexed by.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from fleetgen import GENERATOR_VERSION
from fleetgen.layers import TarMember
from fleetgen.sources import (
    FileEntry,
    JarFile,
    dpkg_owned_paths,
    find_jars,
    os_candidates,
    pick_jdk,
    sample_to_budget,
    walk_entries,
)

MIB = 1 << 20
OS_BYTES = 165 * MIB
JRE_BYTES = 259 * MIB
LARGE_TAR_BYTES = 2700 * MIB
POOL_SIZE = 150
JARS_PER_IMAGE = (47, 112)
COMMON_SHARE = 0.7
APP_MIB = (3.0, 20.0)
MIN_JAR, MAX_JAR = 16 << 10, 8 * MIB
MIN_ENTRY_SOURCE_BYTES = 150 * MIB  # below this, JDK modules also feed generated jars
SERVICES = (
    "orders", "billing", "catalog", "payments", "shipping", "inventory",
    "accounts", "notifier", "search", "reports", "gateway", "identity",
)  # fmt: skip
BASE_MTIME = 1_700_000_000  # when the shared base layers were "built"
DOCKER_MTIME = 1_704_067_200  # the Docker-built services' own layers
JIB_MTIME = 1  # Jib's reproducible file time: the epoch plus one second
JRE_HOME = "opt/java/openjdk"


def _key(*parts: object) -> str:
    text = json.dumps([GENERATOR_VERSION, *parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _stat_fingerprint(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


@dataclass(frozen=True)
class JarSpec:
    """A jar to generate from other jars' entries (see zipcopy.write_jar)."""

    name: str
    sources: tuple[str, ...]
    manifest: str
    keep_seed: str
    keep: float
    target_bytes: int | None = None
    drop_seed: str = ""
    drop: float = 0.0

    @cached_property
    def key(self) -> str:
        fingerprints = [[s, *_stat_fingerprint(s)] for s in self.sources]
        return _key(
            "jar", fingerprints, self.manifest, self.keep_seed, self.keep,
            self.target_bytes, self.drop_seed, self.drop,
        )  # fmt: skip


@dataclass(frozen=True)
class LibJar:
    """A jar in a libs layer: a real file or a generated one."""

    name: str
    real: JarFile | None = None
    generated: JarSpec | None = None

    @property
    def source_paths(self) -> tuple[str, ...]:
        return (self.real.path,) if self.real else self.generated.sources  # type: ignore[union-attr]


@dataclass
class LayerSpec:
    role: str  # os, jre, libs, app, large
    compressor: str  # go, zlib
    mtime: int
    members: list[TarMember]
    fingerprints: list  # what the bytes depend on besides the members' names
    description: str
    key: str = ""

    def __post_init__(self) -> None:
        rows = [[m.arcname, m.kind, m.mode, m.linkname] for m in self.members]
        self.key = _key("layer", self.role, self.compressor, self.mtime, rows, self.fingerprints)


@dataclass
class ImageSpec:
    service: str
    version: str
    flavour: str  # docker (Go gzip, Docker media types) or jib (zlib, OCI media types)
    layers: list[LayerSpec]
    app_path: str
    repository: str
    tag: str

    @property
    def ref_name(self) -> str:
        return f"{self.repository.replace('/', '-')}-{self.tag}"


@dataclass
class FleetPlan:
    scale: float
    seed: str
    jdk: str
    images: list[ImageSpec] = field(default_factory=list)
    jars: dict[str, JarSpec] = field(default_factory=dict)  # key -> spec
    jars_dir: Path = Path()
    real_jar_count: int = 0
    generated_lib_jars: int = 0

    @property
    def layers(self) -> dict[str, LayerSpec]:
        return {layer.key: layer for image in self.images for layer in image.layers}


def _with_parents(entries: list[tuple[str, FileEntry | None]]) -> list[TarMember]:
    """Tar members sorted by name, each preceded by its parent directories."""
    members: dict[str, TarMember] = {}
    for arcname, entry in sorted(entries, key=lambda e: e[0]):
        parts = arcname.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            members.setdefault(parent, TarMember(parent, "d", 0o755))
        if entry is None or entry.kind == "d":
            members.setdefault(arcname, TarMember(arcname, "d", 0o755))
        elif entry.kind == "l":
            members[arcname] = TarMember(arcname, "l", 0o777, linkname=entry.linkname)
        else:
            members[arcname] = TarMember(arcname, "f", entry.mode, source=entry.path)
    return [members[name] for name in sorted(members)]


def _file_fingerprints(entries: list[FileEntry]) -> list:
    return [[e.path, e.size, e.mtime_ns] for e in entries if e.kind == "f"]


def _bump_version(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    match = re.match(r"^(.*?)(\d+)([^\d]*)$", stem)
    if match and "-" in stem:
        head, number, tail = match.groups()
        return f"{head}{int(number) + 1}{tail}.jar"
    return f"{stem}-2.jar"


def _manifest(title: str, version: str, main_class: str = "") -> str:
    lines = ["Manifest-Version: 1.0", "Created-By: 17.0 (Eclipse Adoptium)"]
    lines += [f"Implementation-Title: {title}", f"Implementation-Version: {version}"]
    if main_class:
        lines.append(f"Main-Class: {main_class}")
    return "\r\n".join(lines) + "\r\n\r\n"


class _Planner:
    def __init__(self, scale: float, seed: str, cache_dir: Path) -> None:
        self.scale = scale
        self.seed = seed
        self.rng = random.Random(seed)
        self.jars_dir = cache_dir / "jars"
        self.jdk = pick_jdk(JRE_BYTES)
        self.all_jars = find_jars(cache_dir / "jar-scan.json", exclude_under=self.jdk)
        self.plan = FleetPlan(scale, seed, self.jdk, jars_dir=self.jars_dir)

    # -- jars ---------------------------------------------------------------------------
    def _register(self, spec: JarSpec) -> JarSpec:
        self.plan.jars[spec.key] = spec
        return spec

    def jar_path(self, jar: LibJar) -> str:
        if jar.real:
            return jar.real.path
        return str(self.jars_dir / f"{jar.generated.key}.jar")  # type: ignore[union-attr]

    def _entry_sources(self) -> list[str]:
        sources = [j.path for j in self.all_jars]
        if sum(j.size for j in self.all_jars) < MIN_ENTRY_SOURCE_BYTES:
            jmods = os.path.join(self.jdk, "jmods")
            if os.path.isdir(jmods):
                sources += [os.path.join(jmods, n) for n in sorted(os.listdir(jmods))]
        return sources

    def _upgrade(self, jar: LibJar) -> LibJar:
        """v2 of a dependency: most of the same classes, a new name and manifest."""
        name = _bump_version(jar.name)
        base = jar.generated
        spec = JarSpec(
            name=name,
            sources=jar.source_paths,
            manifest=_manifest(name.removesuffix(".jar"), "2"),
            keep_seed=base.keep_seed if base else "all",
            keep=base.keep if base else 1.0,
            drop_seed=f"{self.seed}:upgrade:{name}",
            drop=0.08,
        )
        return LibJar(name, generated=self._register(spec))

    # -- layers -------------------------------------------------------------------------
    def os_layer_members(self) -> tuple[list[TarMember], list]:
        files = sample_to_budget(os_candidates(), int(OS_BYTES * self.scale), f"{self.seed}:os")
        members = _with_parents([(e.path.lstrip("/"), e) for e in files])
        return members, _file_fingerprints(files)

    def jre_layer_members(self) -> tuple[list[TarMember], list]:
        entries = walk_entries(self.jdk)
        if self.scale < 0.999:
            files = [e for e in entries if e.kind != "d"]
            entries = sample_to_budget(files, int(JRE_BYTES * self.scale), f"{self.seed}:jre")
        rows = [(f"{JRE_HOME}/{os.path.relpath(e.path, self.jdk)}", e) for e in entries]
        return _with_parents(rows), _file_fingerprints(entries)

    def libs_layer(self, jars: list[LibJar], libdir: str, compressor: str, mtime: int) -> LayerSpec:
        rows: list[tuple[str, FileEntry | None]] = []
        fingerprints = []
        for jar in jars:
            path = self.jar_path(jar)
            if jar.real:
                fingerprints.append([path, jar.real.size, jar.real.mtime_ns])
            else:
                fingerprints.append([jar.generated.key])  # type: ignore[union-attr]
            rows.append((f"{libdir}/{jar.name}", FileEntry(path, "f", 0, 0, 0o644)))
        members = _with_parents(rows)
        return LayerSpec("libs", compressor, mtime, members, fingerprints, f"{len(jars)} jars")

    def app_layer(self, spec: JarSpec, arcname: str, compressor: str, mtime: int) -> LayerSpec:
        path = str(self.jars_dir / f"{spec.key}.jar")
        members = _with_parents([(arcname, FileEntry(path, "f", 0, 0, 0o644))])
        return LayerSpec("app", compressor, mtime, members, [spec.key], f"application {spec.name}")

    # -- the fleet ----------------------------------------------------------------------
    def build(self) -> FleetPlan:
        rng, scale = self.rng, self.scale
        os_members, os_prints = self.os_layer_members()
        jre_members, jre_prints = self.jre_layer_members()
        base = {
            (role, comp): LayerSpec(role, comp, BASE_MTIME, members, prints, desc)
            for role, members, prints, desc in (
                ("os", os_members, os_prints, "OS files"),
                ("jre", jre_members, jre_prints, f"JDK {os.path.basename(self.jdk)}"),
            )
            for comp in ("go", "zlib")
        }
        usable = [j for j in self.all_jars if MIN_JAR <= j.size <= MAX_JAR and j.entries >= 2]
        self.plan.real_jar_count = len(usable)
        order = rng.sample(usable, len(usable))
        pool_size = min(len(order), max(8, round(POOL_SIZE * scale)))
        pool, spare = order[:pool_size], order[pool_size:]
        variant_sources = [j for j in usable if j.size >= 32 << 10] or usable
        entry_sources = self._entry_sources()
        generated = 0

        for index, service in enumerate(SERVICES):
            flavour = "docker" if index % 2 == 0 else "jib"
            comp = "go" if flavour == "docker" else "zlib"
            other = "zlib" if comp == "go" else "go"
            mtime = DOCKER_MTIME if flavour == "docker" else JIB_MTIME
            libdir, app_path = (
                (f"opt/{service}/lib", f"opt/{service}/{service}.jar")
                if flavour == "docker"
                else ("app/libs", f"app/{service}.jar")
            )
            count = max(4, round(rng.randint(*JARS_PER_IMAGE) * scale))
            n_common = min(len(pool), round(count * COMMON_SHARE))
            jars: list[LibJar] = []
            names: set[str] = set()

            def add(jar: LibJar, names: set[str] = names, jars: list[LibJar] = jars) -> None:
                name, k = jar.name, 1
                while name in names:
                    k += 1
                    name = f"{jar.name.removesuffix('.jar')}-{k}.jar"
                names.add(name)
                jars.append(LibJar(name, jar.real, jar.generated))

            for real in rng.sample(pool, n_common):
                add(LibJar(os.path.basename(real.path).replace(".jmod", ".jar"), real=real))
            for k in range(count - n_common):
                if spare:
                    real = spare.pop()
                    add(LibJar(os.path.basename(real.path).replace(".jmod", ".jar"), real=real))
                    continue
                source = rng.choice(variant_sources)
                stem = os.path.basename(source.path).rsplit(".", 1)[0]
                name = f"{stem}-{service}{k}.jar"
                spec = JarSpec(
                    name=name,
                    sources=(source.path,),
                    manifest=_manifest(name.removesuffix(".jar"), "1"),
                    keep_seed=f"{self.seed}:variant:{name}",
                    keep=rng.uniform(0.5, 0.9),
                )
                add(LibJar(name, generated=self._register(spec)))
                generated += 1

            v2_jars = list(jars)
            for position in rng.sample(range(len(jars)), rng.randint(1, 3)):
                v2_jars[position] = self._upgrade(jars[position])

            target = int(rng.uniform(*APP_MIB) * MIB * scale)
            app_sources = tuple(rng.sample(entry_sources, len(entry_sources)))
            main_class = f"com.example.{service}.Application"
            app_v1 = JarSpec(
                f"{service}.jar", app_sources, _manifest(service, "1.0.0", main_class),
                keep_seed=f"{self.seed}:app:{service}", keep=0.9, target_bytes=target,
            )  # fmt: skip
            app_v2 = JarSpec(
                f"{service}.jar", app_sources, _manifest(service, "1.1.0", main_class),
                keep_seed=app_v1.keep_seed, keep=0.9, target_bytes=int(target * 1.03),
                drop_seed=f"{self.seed}:app2:{service}", drop=0.04,
            )  # fmt: skip
            os_v2_comp = other if index % 3 == 2 else comp
            for version, lib_jars, app, os_comp in (
                ("v1", jars, app_v1, comp),
                ("v2", v2_jars, app_v2, os_v2_comp),
            ):
                self._register(app)
                layers = [
                    base[("os", os_comp)],
                    base[("jre", comp)],
                    self.libs_layer(lib_jars, libdir, comp, mtime),
                    self.app_layer(app, app_path, comp, mtime),
                ]
                self.plan.images.append(
                    ImageSpec(
                        service, version, flavour, layers, app_path, f"fleet/{service}", version
                    )
                )
        self.plan.generated_lib_jars = generated
        return self.plan

    def large_image(self) -> ImageSpec:
        """One image with a single big layer of package-owned files from /usr."""
        owned = dpkg_owned_paths()
        files = [
            e
            for e in walk_entries("/usr")
            if e.kind == "f" and (owned is None or e.path in owned) and e.size <= 256 * MIB
        ]
        chosen = sample_to_budget(files, int(LARGE_TAR_BYTES * self.scale), f"{self.seed}:large")
        members = _with_parents([(e.path.lstrip("/"), e) for e in chosen])
        layer = LayerSpec(
            "large",
            "go",
            BASE_MTIME,
            members,
            _file_fingerprints(chosen),
            "big layer of /usr files",
        )
        return ImageSpec("large", "v1", "docker", [layer], "", "fleet/large", "v1")


def make_plan(scale: float, seed: str, cache_dir: Path, with_large: bool = False) -> FleetPlan:
    planner = _Planner(scale, seed, cache_dir)
    plan = planner.build()
    if with_large:
        plan.images.append(planner.large_image())
    return plan
