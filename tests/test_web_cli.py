"""`transship ui` on the command line: loopback only unless told, clear errors."""

from __future__ import annotations

import asyncio
import socket

import pytest
from typer.testing import CliRunner

from transship.cli.main import app
from transship.cli.ui import bind_socket, browser_url, is_loopback

runner = CliRunner()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_refuses_a_reachable_address_without_allow_remote(host, tmp_path):
    config = tmp_path / "transship.yaml"
    config.write_text("registries: {}\n")
    result = runner.invoke(app, ["ui", "--host", host, "--config", str(config)])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output and host in result.output


def test_busy_port_is_a_one_line_error(tmp_path):
    config = tmp_path / "transship.yaml"
    config.write_text("registries: {}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["ui", "--port", str(port), "--config", str(config)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_broken_config_fails_before_listening(tmp_path):
    config = tmp_path / "transship.yaml"
    config.write_text("registries: [oops\n")
    result = runner.invoke(app, ["ui", "--port", "0", "--config", str(config)])
    assert result.exit_code == 2 and "transship.yaml" in result.output


def test_printed_address_carries_the_token():
    assert browser_url("127.0.0.1", 8080, "abc") == "http://127.0.0.1:8080/?token=abc"
    assert browser_url("::1", 9000, "t") == "http://[::1]:9000/?token=t"
    assert browser_url("0.0.0.0", 80, "t") == "http://127.0.0.1:80/?token=t"


def test_listening_socket_lets_asyncio_turn_nagle_off():
    """Without TCP_NODELAY on accepted connections every small answer waited ~40 ms."""
    sock = bind_socket("127.0.0.1", 0)

    async def nodelay_of_accepted_connection() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname())
            value = await asyncio.wait_for(accepted, 5)
            writer.close()
        return value

    assert asyncio.run(nodelay_of_accepted_connection()) != 0
