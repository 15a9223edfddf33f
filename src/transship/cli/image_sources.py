"""Turning image arguments (`docker://host/repo:tag`, `oci:DIR[:ref]`, `bundle:META.json`,
`docker-archive:FILE[:name:tag]`, ...) into Sources to read them from.

A file transport named without an image reference that holds several images stands for
all of them. Registry clients are built from the configuration, one per host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transship.config import Config
from transship.engine.session import open_client
from transship.errors import ConfigError
from transship.reference import ImageReference
from transship.registry.client import RegistryClient
from transship.slim.analyze.image_reader import ImageInput
from transship.transports.base import Source
from transship.transports.factory import open_source, parse_spec
from transship.transports.registry import RegistrySource


@dataclass
class SourceOpener:
    cfg: Config
    maxconn: int = 4
    insecure: bool = False
    skip_verify: bool = False
    _registries: dict[str, RegistrySource] = field(default_factory=dict)
    _files: dict[str, Source] = field(default_factory=dict)

    def client(self, host: str) -> RegistryClient:
        return self.registry(host).client

    def registry(self, host: str) -> RegistrySource:
        if host not in self._registries:
            client = open_client(
                self.cfg.registry(host),
                self.maxconn,
                insecure=self.insecure,
                skip_verify=self.skip_verify,
            )
            self._registries[host] = RegistrySource(client)
        return self._registries[host]

    def images(self, spec: str) -> list[ImageInput]:
        """The images a command-line argument names."""
        text = spec.strip()
        if text.startswith("docker://") or looks_like_registry_reference(text):
            ref = ImageReference.parse(text)
            if not ref.registry:
                raise ConfigError(
                    f"{spec}: name the registry, e.g. docker://registry.example.com:5000/{ref.repository}"
                )
            source = self.registry(ref.registry)
            name = text if text.startswith("docker://") else f"docker://{text}"
            return [ImageInput(spec, source, ref.repository, ref.reference, name)]
        parsed = parse_spec(text)
        source = self._files.get(text)
        if source is None:
            source = self._files[text] = open_source(parsed)
        locations = getattr(source, "locations", None)
        found = locations() if parsed.ref is None and callable(locations) else []
        if len(found) <= 1:
            return [ImageInput(spec, source, "", parsed.ref or "latest", text)]
        return [
            ImageInput(f"{text} {location}", source, location.repository, location.reference, text)
            for location in found
        ]

    def close(self) -> None:
        for source in [*self._registries.values(), *self._files.values()]:
            source.close()


def looks_like_registry_reference(text: str) -> bool:
    """`host:5000/repo:tag` without docker:// (but not `oci:dir`): a registry image."""
    if "://" in text:
        return False
    first = text.split("/", 1)[0]
    return (
        "/" in text
        and ("." in first or ":" in first or first == "localhost")
        and not any(
            text.startswith(f"{kind}:")
            for kind in ("oci", "oci-archive", "docker-archive", "bundle", "image-transmit")
        )
    )
