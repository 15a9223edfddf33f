"""`docker-daemon:`: the stream sent to `POST /images/load`, captured by a small test
server on a unix socket and read back by skopeo as a docker-archive."""

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.bundle_helpers import run, sample_jobs, save
from tests.conftest import require_tools
from tests.transport_driver import copy_all
from transship.errors import NotFoundError
from transship.oci.descriptor import Platform
from transship.transports.docker_daemon import DaemonError, DockerDaemonDestination
from transship.transports.oci_layout import OCILayoutSource


class FakeDockerDaemon:
    """Accepts one `POST /images/load` per request; saves the (chunked) body."""

    def __init__(self, directory: Path, answer: list[dict] | None = None, status: int = 200):
        self.socket_path = str(directory / "docker.sock")
        self.bodies: list[bytes] = []
        self.complete: list[bool] = []
        self.paths: list[str] = []
        self.answer = answer
        self.status = status
        daemon = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def address_string(self) -> str:
                return "unix"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                daemon.paths.append(self.path)
                body, complete = bytearray(), False
                try:
                    while True:
                        line = self.rfile.readline()
                        if not line:
                            break
                        size = int(line.split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            complete = True
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                except (ValueError, ConnectionError):
                    pass
                daemon.bodies.append(bytes(body))
                daemon.complete.append(complete)
                if not complete:
                    return
                lines = daemon.answer or [{"stream": "Loaded image: ok\n"}]
                payload = b"".join(json.dumps(m).encode() + b"\n" for m in lines)
                self.send_response(daemon.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = socketserver.ThreadingUnixStreamServer(self.socket_path, Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def short_dir(tmp_path_factory):
    # unix socket paths are limited to ~100 bytes
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dkr") as d:
        yield Path(d)


def test_stream_is_a_docker_archive_skopeo_can_read(sample_images, short_dir, tmp_path):
    require_tools("skopeo")
    with FakeDockerDaemon(short_dir) as daemon:
        dst = DockerDaemonDestination(
            daemon.socket_path, platform=Platform("linux", "amd64"), spool_dir=tmp_path
        )
        save(sample_images.layout.path, dst, ["docker-single", "oci-multi", "tiny"])
    assert daemon.complete == [True]
    assert daemon.paths[0].startswith("/images/load")
    assert dst.loaded == ["Loaded image: ok"]
    archive = tmp_path / "sent.tar"
    archive.write_bytes(daemon.bodies[0])
    for name in ("docker-single", "oci-multi", "tiny"):
        ref = f"docker-archive:{archive}:samples/{name}:v1"
        config = json.loads(run("skopeo", "inspect", "--config", ref).stdout)
        assert config["config"]["Labels"]["sample"] == name
        assert config["architecture"] == "amd64"
    run(
        "skopeo",
        "copy",
        "--quiet",
        f"docker-archive:{archive}:samples/docker-single:v1",
        f"dir:{tmp_path}/d",
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("transship-docker-load")]


def test_daemon_error_is_reported(sample_images, short_dir, tmp_path):
    answer = [{"errorDetail": {"message": "no space left on device"}, "error": "no space"}]
    with FakeDockerDaemon(short_dir, answer=answer) as daemon:
        dst = DockerDaemonDestination(daemon.socket_path, spool_dir=tmp_path)
        with pytest.raises(DaemonError, match="refused the images: no space left on device"):
            save(sample_images.layout.path, dst, ["tiny"])


def test_http_error_is_reported(sample_images, short_dir, tmp_path):
    with FakeDockerDaemon(short_dir, answer=[{"message": "bad"}], status=500) as daemon:
        dst = DockerDaemonDestination(daemon.socket_path, spool_dir=tmp_path)
        with pytest.raises(DaemonError, match="HTTP 500"):
            save(sample_images.layout.path, dst, ["tiny"])


def test_abort_cuts_the_stream_so_nothing_is_loaded(sample_images, short_dir, tmp_path):
    with FakeDockerDaemon(short_dir) as daemon:
        dst = DockerDaemonDestination(daemon.socket_path, spool_dir=tmp_path)
        with pytest.raises(NotFoundError):
            copy_all(
                OCILayoutSource(sample_images.layout.path),
                dst,
                [*sample_jobs(["tiny"]), ("", "missing", "x", "1")],
            )
        for _ in range(100):
            if daemon.complete:
                break
            threading.Event().wait(0.05)
    assert daemon.complete == [False]


def test_no_daemon_is_a_clear_error(sample_images, tmp_path):
    dst = DockerDaemonDestination(str(tmp_path / "nothing.sock"), spool_dir=tmp_path)
    with pytest.raises(DaemonError, match="Docker daemon"):
        save(sample_images.layout.path, dst, ["tiny"])
