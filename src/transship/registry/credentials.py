"""Where registry credentials come from: explicit values, then ~/.docker/config.json.

Docker's config.json may hold `auths` (base64 `user:password`), a `credsStore` for all
registries, or per-registry `credHelpers`; helpers are `docker-credential-NAME get` programs
that read the server on stdin and print JSON. We call them the same way the Docker CLI does.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from transship.errors import AuthError, ConfigError


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""  # a password or an identity token
    identity_token: bool = False

    def __repr__(self) -> str:  # never show the secret
        return f"Credentials(username={self.username!r}, password=***)"


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _hosts_to_try(registry: str) -> list[str]:
    """The keys Docker uses for a registry in config.json, most specific first."""
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        keys += ["https://index.docker.io/v1/", "index.docker.io", "docker.io"]
    return keys


def _from_helper(helper: str, registry: str) -> Credentials | None:
    program = f"docker-credential-{helper}"
    try:
        result = subprocess.run(
            [program, "get"], input=registry.encode(), capture_output=True, timeout=30
        )
    except FileNotFoundError:
        raise AuthError(
            f"credential helper {program} named in {docker_config_path()} is not installed"
        ) from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {program} did not answer within 30 s") from None
    if result.returncode != 0:
        return None  # "credentials not found in native keychain": fall back to anonymous
    try:
        data = json.loads(result.stdout)
        user, secret = data.get("Username", ""), data.get("Secret", "")
    except (ValueError, AttributeError):
        raise AuthError(f"credential helper {program} printed something that is not JSON") from None
    if user == "<token>":
        return Credentials("<token>", secret, identity_token=True)
    return Credentials(user, secret) if (user or secret) else None


def from_docker_config(registry: str, path: Path | None = None) -> Credentials | None:
    """Credentials for `registry` from Docker's config.json, or None when it has none."""
    path = path or docker_config_path()
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read Docker config: {e}") from None
    helpers = config.get("credHelpers") or {}
    for key in _hosts_to_try(registry):
        if key in helpers:
            return _from_helper(helpers[key], key)
    auths = config.get("auths") or {}
    for key in _hosts_to_try(registry):
        entry = auths.get(key)
        if not entry:
            continue
        if entry.get("identitytoken"):
            return Credentials("<token>", entry["identitytoken"], identity_token=True)
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ConfigError(f"{path}: auths.{key}.auth is not base64 user:password") from None
            return Credentials(user, password)
        if entry.get("username"):
            return Credentials(entry["username"], entry.get("password", ""))
    if config.get("credsStore"):
        return _from_helper(config["credsStore"], registry)
    return None
