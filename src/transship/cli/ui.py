"""`transship ui`: the local web UI, on loopback, behind a per-start access token."""

from __future__ import annotations

import ipaddress
import socket
import webbrowser

import typer

from transship.cli.common import EXIT_USAGE, fail, get_config, handle_errors, stderr
from transship.cli.main import app
from transship.i18n import t


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """Listen on host:port now, so a busy port is reported before anything else happens
    and port 0 gives a free port whose number goes into the printed address."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # so, and with Nagle on every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def browser_url(host: str, port: int, token: str) -> str:
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        shown = f"[{host}]"
    return f"http://{shown}:{port}/?token={token}"


@app.command()
@handle_errors
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8080, help="Port to listen on (0: any free port)."),
    config: str = typer.Option(
        None, "--config", "-c", help="Config file (default ./transship.yaml, ./cfg.yaml)."
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in a browser."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow listening on an address other machines can reach."
    ),
) -> None:
    """A local web page to check and copy images, save and load bundles, and watch progress.

    \b
    transship ui                     # then open the printed address
    transship ui --config cfg.yaml --open
    """
    # Imported here: the other commands need neither the web app nor its server.
    import uvicorn

    from transship.web.app import create_app
    from transship.web.security import loopback_hosts, new_token

    if not is_loopback(host):
        if not allow_remote:
            raise fail(t("ui.refuse_remote", host=host))
        stderr.print(t("ui.remote_warning", host=host), markup=False, soft_wrap=True)
    get_config(config)  # a broken config fails now, with its message, not in the browser
    try:
        sock = bind_socket(host, port)
    except OSError as e:
        raise fail(
            t("ui.cannot_listen", host=host, port=port, reason=e.strerror or str(e)), EXIT_USAGE
        ) from None
    actual_port = sock.getsockname()[1]
    token = new_token()
    asgi = create_app(
        token=token,
        config_path=config,
        allowed_hosts=None if allow_remote else loopback_hosts(actual_port),
    )
    url = browser_url(host, actual_port, token)
    typer.echo(t("ui.listening", url=url), err=False)
    if open_browser:
        webbrowser.open(url)
    server = uvicorn.Server(
        uvicorn.Config(
            asgi,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=3,  # open event streams must not hold up Ctrl+C
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        asgi.app.state.ui.jobs.cancel_all()
    stderr.print(t("ui.stopped"), markup=False)
