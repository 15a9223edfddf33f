"""Real registries for integration tests: `docker-registry serve` (CNCF distribution 2.8).

Each RegistryServer runs in its own process group on a free 127.0.0.1 port with its own
storage directory, and is killed with its group on stop(), on interpreter exit, and by the
pytest fixtures' finalizers, so a failing test leaves nothing running.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from .pki import ServerCertificate
from .token_issuer import TokenIssuer

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT_SECONDS = 15.0
_PORT_ATTEMPTS = 3

_running: set[RegistryServer] = set()


def registry_binary() -> str | None:
    return shutil.which(REGISTRY_BINARY)


def free_port() -> int:
    """A port that was free a moment ago (the registry binds it itself; start() retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RegistryStartError(RuntimeError):
    pass


class RegistryServer:
    """One `docker-registry serve` process.

    Auth is one of: none, basic (htpasswd with bcrypt), token (via a running TokenIssuer).
    TLS when `tls` is given; clients then trust `ca_path` (or `cert_dir` for skopeo).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        tls: ServerCertificate | None = None,
        basic_auth: tuple[str, str] | None = None,
        token_issuer: TokenIssuer | None = None,
        readonly: bool = False,
        log_level: str = "info",
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        if basic_auth and token_issuer:
            raise ValueError("choose basic_auth or token_issuer, not both")
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="transship-registry-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir = self.workdir / "storage"
        self.storage_dir.mkdir(exist_ok=True)
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.tls = tls
        self.basic_auth = basic_auth
        self.token_issuer = token_issuer
        self.readonly = readonly
        self.log_level = log_level
        self.extra_config = extra_config or {}
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    # -- addresses and credentials -----------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        """host:port, as used in image references (127.0.0.1:PORT/repo:tag)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def ca_path(self) -> Path | None:
        return self.tls.ca_path if self.tls else None

    @property
    def cert_dir(self) -> Path | None:
        """A directory holding only ca.crt, the layout skopeo's --cert-dir expects."""
        return self.ca_path.parent if self.ca_path else None

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(username, password) a client needs, for basic or token auth; None if open."""
        if self.basic_auth:
            return self.basic_auth
        if self.token_issuer and self.token_issuer.users:
            return next(iter(self.token_issuer.users.items()))
        return None

    @property
    def username(self) -> str | None:
        return self.credentials[0] if self.credentials else None

    @property
    def password(self) -> str | None:
        return self.credentials[1] if self.credentials else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ssl_context(self) -> ssl.SSLContext:
        """Client-side context trusting this registry's CA (default trust if no TLS)."""
        if self.ca_path:
            return ssl.create_default_context(cafile=str(self.ca_path))
        return ssl.create_default_context()

    def skopeo_flags(self, prefix: str = "") -> list[str]:
        """Flags for skopeo to reach this registry; prefix is "", "src-" or "dest-"."""
        flags = []
        if self.tls:
            flags += [f"--{prefix}cert-dir={self.cert_dir}", f"--{prefix}tls-verify=true"]
        else:
            flags.append(f"--{prefix}tls-verify=false")
        if self.credentials:
            flags.append(f"--{prefix}creds={self.username}:{self.password}")
        return flags

    def write_auth_file(self, path: Path) -> Path:
        """A docker config.json / containers auth.json with this registry's credentials."""
        auths: dict[str, Any] = {}
        if self.credentials:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            auths[self.host] = {"auth": token}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"auths": auths}, indent=2))
        return path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- configuration -------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {
                "level": self.log_level,
                "formatter": "text",
                "accesslog": {"disabled": self.log_level not in ("debug", "info")},
            },
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                "redirect": {"disable": True},
                "maintenance": {
                    "uploadpurging": {"enabled": False},
                    "readonly": {"enabled": self.readonly},
                },
            },
            "http": {
                "addr": f"127.0.0.1:{self.port}",
                "secret": base64.b64encode(os.urandom(24)).decode(),
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.tls:
            config["http"]["tls"] = {
                "certificate": str(self.tls.cert_path),
                "key": str(self.tls.key_path),
            }
        if self.basic_auth:
            config["auth"] = {
                "htpasswd": {"realm": "transship-test", "path": str(self._write_htpasswd())}
            }
        if self.token_issuer:
            issuer = self.token_issuer.start()
            config["auth"] = {
                "token": {
                    "realm": issuer.realm,
                    "service": issuer.service,
                    "issuer": issuer.issuer,
                    "rootcertbundle": str(issuer.signing_key.cert_path),
                }
            }
        _deep_merge(config, self.extra_config)
        return config

    def _write_htpasswd(self) -> Path:
        assert self.basic_auth
        username, password = self.basic_auth
        path = self.workdir / "htpasswd"
        # distribution accepts only bcrypt entries.
        entry = subprocess.run(
            ["htpasswd", "-Bbn", username, password],
            check=True,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        ).stdout.strip()
        path.write_text(entry + "\n")
        return path

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> RegistryServer:
        if self.running:
            return self
        binary = registry_binary()
        if binary is None:
            raise RegistryStartError(f"{REGISTRY_BINARY} not found (run tests/support/system.sh)")
        last_error = ""
        for _ in range(_PORT_ATTEMPTS):
            self.port = free_port()
            self.config_path.write_text(yaml.safe_dump(self._config(), sort_keys=False))
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    [binary, "serve", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stop() kills all of it
                    preexec_fn=_die_with_parent if _in_main_thread() else None,
                )
            _running.add(self)
            try:
                self._wait_until_ready()
                return self
            except RegistryStartError as error:
                last_error = str(error)
                self.stop(remove_files=False)
                if "address already in use" not in last_error:
                    break
        raise RegistryStartError(last_error)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RegistryStartError(
                    f"docker-registry exited with {self._process.returncode}:\n"
                    + self.log_text()[-3000:]
                )
            if self._answers_v2():
                return
            time.sleep(0.01)
        raise RegistryStartError(
            f"docker-registry did not answer on {self.url}/v2/ within "
            f"{START_TIMEOUT_SECONDS}s:\n" + self.log_text()[-3000:]
        )

    def _answers_v2(self) -> bool:
        if self.tls:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=1, context=self.ssl_context()
            )
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/v2/")
            status = connection.getresponse().status
            return status in (200, 401)  # 401: up, and asking for credentials
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def stop(self, remove_files: bool | None = None) -> None:
        """Kill the registry's process group; remove its workdir if this object made it."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is not None and process.poll() is None:
            _kill_group(process)
        if remove_files if remove_files is not None else self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> RegistryServer:
        """Stop and start again on the same storage (a new port is not guaranteed)."""
        self.stop(remove_files=False)
        return self.start()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        auth = "basic" if self.basic_auth else "token" if self.token_issuer else "none"
        return f"RegistryServer({self.url}, auth={auth}, storage={self.storage_dir})"


def _in_main_thread() -> bool:
    # PR_SET_PDEATHSIG fires when the starting *thread* ends, so only use it from the main one.
    return threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the test process dies without cleaning up (kill -9)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


@atexit.register
def _stop_all_registries() -> None:
    for server in list(_running):
        server.stop()
