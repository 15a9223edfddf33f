"""The configuration file: named registries, concurrency, retries, cache.

Our own format (`transship.yaml`):

    registries:
      company:
        url: https://registry.example.com      # http://... means plain http (insecure)
        user: deploy
        password_env: COMPANY_REGISTRY_PASSWORD  # or password: ... (avoid in files)
        ca_file: /etc/ssl/company-ca.pem
      site:
        url: 10.0.0.5:5000
        insecure: true
        repository: site/apps                  # rewrite src/xxxx/image -> site/apps/image
    maxconn: 5
    retries: 3
    retry_backoff: 0.5   # seconds; doubles with each retry of the same transfer
    codec: dedup         # what `save` writes unless --codec says otherwise (default raw)
    dedup_effort: max    # with codec dedup (default balanced)

image-transmit's `cfg.yaml` (`source:`/`target:` lists of `registry`, `user`, `password`,
`name`, `repository`; `maxconn`, `retries`, `skiptlsverify`, `cache`, `outprefix`,
`interval`, `lang`) is read too, so its users can switch without rewriting configs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from transship.errors import ConfigError
from transship.registry.client import RegistryEndpoint
from transship.registry.credentials import Credentials, from_docker_config

DEFAULT_FILES = ("transship.yaml", "cfg.yaml")


class RegistryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    user: str | None = None
    password: str | None = Field(default=None, repr=False)
    password_env: str | None = None
    insecure: bool = False
    skip_verify: bool = False
    ca_file: str | None = None
    repository: str | None = None  # target rewrite of everything before the image name

    @field_validator("url")
    @classmethod
    def _url_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @property
    def host(self) -> str:
        url = self.url
        for prefix in ("https://", "http://", "docker://"):
            if url.startswith(prefix):
                url = url[len(prefix) :]
        return url.rstrip("/").split("/", 1)[0]

    @property
    def path_prefix(self) -> str:
        """A repository prefix given in the URL (`host/ns`), as image-transmit allows."""
        url = self.url.split("://", 1)[-1].rstrip("/")
        return url.split("/", 1)[1] if "/" in url else ""

    def credentials(self) -> Credentials | None:
        password = self.password
        if self.password_env:
            password = os.environ.get(self.password_env)
            if password is None:
                raise ConfigError(
                    f"registry {self.host}: environment variable {self.password_env} is not set"
                )
        if self.user:
            return Credentials(self.user, password or "")
        return from_docker_config(self.host)

    def endpoint(self) -> RegistryEndpoint:
        return RegistryEndpoint(
            host=self.host,
            insecure=self.insecure or self.url.startswith("http://"),
            verify_tls=not self.skip_verify,
            ca_file=self.ca_file,
            credentials=self.credentials(),
        )


class CacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "cache"
    keep_days: float = 7
    keep_size_gb: float = 10


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registries: dict[str, RegistryConfig] = Field(default_factory=dict)
    maxconn: int = Field(default=5, ge=1, le=64)
    retries: int = Field(default=3, ge=0, le=20)
    # Seconds the first retry waits at most; each further retry doubles it (with jitter).
    retry_backoff: float = Field(default=0.5, ge=0, le=60)
    cache: CacheConfig | None = None
    output_prefix: str | None = None
    codec: Literal["raw", "dedup"] = "raw"  # `save`'s default --codec
    dedup_effort: Literal["max", "balanced", "fast"] = "balanced"  # and --dedup-effort
    watch_interval: int = Field(default=60, ge=1)
    lang: str | None = None
    lint: dict[str, Any] | None = None  # read by `transship lint`
    source_file: str | None = Field(default=None, exclude=True)

    def registry(self, name: str) -> RegistryConfig:
        """A registry by its name in the config, or an ad-hoc one from `host[:port]`."""
        if name in self.registries:
            return self.registries[name]
        for candidate in self.registries.values():
            if candidate.host == name or candidate.url.rstrip("/") == name.rstrip("/"):
                return candidate
        if "." in name or ":" in name or name == "localhost":
            return RegistryConfig(url=name, insecure=name.startswith("http://"))
        known = ", ".join(sorted(self.registries)) or "none"
        where = self.source_file or "the configuration"
        raise ConfigError(f"unknown registry name {name!r} (registries in {where}: {known})")


def _from_image_transmit(doc: dict[str, Any]) -> dict[str, Any]:
    """Translate image-transmit's cfg.yaml keys into ours."""
    registries: dict[str, Any] = {}
    skip_verify = bool(doc.get("skiptlsverify", False))
    for side in ("source", "target"):
        entries = doc.get(side) or []
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list):
            raise ConfigError(f"{side}: must be a list of registries")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get("registry"):
                raise ConfigError(f"{side}[{i}].registry: missing")
            url = str(entry["registry"])
            name = entry.get("name") or (
                f"{url.split('://', 1)[-1]}-{entry.get('repository') or ''}".rstrip("-")
            )
            registries[str(name)] = {
                "url": url,
                "user": entry.get("user") or None,
                "password": entry.get("password") or None,
                "skip_verify": skip_verify,
                "repository": entry.get("repository") or None,
            }
    out: dict[str, Any] = {"registries": registries}
    if doc.get("maxconn"):
        out["maxconn"] = doc["maxconn"]
    if doc.get("retries") is not None:
        out["retries"] = doc["retries"]
    cache = doc.get("cache")
    if isinstance(cache, dict):
        out["cache"] = {
            "path": cache.get("pathname", "cache"),
            "keep_days": cache.get("keepdays", 7),
            "keep_size_gb": cache.get("keepsize", 10),
        }
    if doc.get("outprefix"):
        out["output_prefix"] = doc["outprefix"]
    if doc.get("interval"):
        out["watch_interval"] = doc["interval"]
    if doc.get("lang"):
        out["lang"] = doc["lang"]
    return out


def _format_validation_error(path: str, error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{path}: {key}: {message}"


def parse_config(text: str, path: str = "<config>") -> Config:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: must be a mapping of keys to values")
    if "source" in doc or "target" in doc:
        try:
            doc = _from_image_transmit(doc)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    try:
        config = Config.model_validate(doc)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(path, e)) from None
    config.source_file = path
    return config


def load_config(path: str | None = None) -> Config:
    """The file given, else ./transship.yaml, else ./cfg.yaml, else defaults."""
    if path:
        candidates = [Path(path)]
        if not candidates[0].is_file():
            raise ConfigError(f"{path}: configuration file not found")
    else:
        candidates = [Path(name) for name in DEFAULT_FILES if Path(name).is_file()]
    if not candidates:
        return Config()
    file = candidates[0]
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{file}: cannot read: {e.strerror}") from None
    return parse_config(text, str(file))
