"""What every command shares: turning typed errors into one-line messages and exit codes,
loading the configuration, opening registries."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

from transship.errors import ConfigError, TransshipError

# Only what `--help` and `--version` need is imported here: the configuration, the engine and
# the registry client load when a command runs, so every start stays fast.
if TYPE_CHECKING:
    from transship.config import Config, RegistryConfig
    from transship.registry.client import RegistryClient
    from transship.transports.cache import BlobCache

EXIT_OK = 0
EXIT_FAILED = 1  # some images failed
EXIT_USAGE = 2  # bad input: config, references, files

F = TypeVar("F", bound=Callable)

stderr = Console(stderr=True, highlight=False)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    stderr.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Typed library errors become `error: <one line>` and exit code 2; ^C exits 130."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TransshipError as e:
            raise fail(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
        except KeyboardInterrupt:
            stderr.print("interrupted; run the same command again to continue where it stopped")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def get_config(path: str | None) -> Config:
    from transship.config import load_config

    return load_config(path)


def open_client(
    registry: RegistryConfig, maxconn: int, *, insecure: bool = False, skip_verify: bool = False
) -> RegistryClient:
    """`transship.engine.session.open_client`, with the engine imported only when used."""
    from transship.engine.session import open_client as open_registry_client

    return open_registry_client(registry, maxconn, insecure=insecure, skip_verify=skip_verify)


def open_cache(cfg: Config, path: str | None) -> BlobCache | None:
    """`transship.engine.session.open_cache`, with the engine imported only when used."""
    from transship.engine.session import open_cache as open_blob_cache

    return open_blob_cache(cfg, path)


def read_list(path: str | None) -> str:
    """The image list from a file, or from stdin when it is piped in ("-" too)."""
    if path and path != "-":
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read image list: {e.strerror}") from None
    if path == "-" or not sys.stdin.isatty():
        return sys.stdin.read()
    return ""
